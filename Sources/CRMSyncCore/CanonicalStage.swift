/// The canonical pipeline ladder every CRM's stages are mapped onto.
///
/// Order matters: funnel reports count a deal as having advanced past a stage when it later entered
/// a stage further up the ladder. The two closed stages share the top rung.
public enum CanonicalStage: String, Sendable, Codable, CaseIterable, Comparable {
    case lead
    case mql
    case sql
    case discovery
    case proposal
    case negotiation
    case closedWon = "closed_won"
    case closedLost = "closed_lost"

    public var rank: Int {
        switch self {
        case .lead: 0
        case .mql: 1
        case .sql: 2
        case .discovery: 3
        case .proposal: 4
        case .negotiation: 5
        case .closedWon, .closedLost: 6
        }
    }

    public var isClosed: Bool { self == .closedWon || self == .closedLost }

    public static func < (lhs: CanonicalStage, rhs: CanonicalStage) -> Bool {
        lhs.rank == rhs.rank ? lhs.rawValue < rhs.rawValue : lhs.rank < rhs.rank
    }
}
