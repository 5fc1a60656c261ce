import Foundation

/// Which faults the simulator injects, as probabilities per request (or per page for data faults).
/// Parsed from `429=0.05,500=0.02,503=0.02,slow=0.02,hang=0.005,truncate=0.02,repeat=0.05,mutate=0.02,out_of_order=0.02`
/// or `all` (every kind at a moderate rate).
public struct FaultSpec: Sendable, Equatable {
    public var rateLimited = 0.0
    public var serverError = 0.0
    public var unavailable = 0.0
    public var slow = 0.0
    public var hang = 0.0
    public var truncate = 0.0
    public var repeatRecords = 0.0
    public var mutate = 0.0
    public var outOfOrder = 0.0
    /// How long a "hung" response stalls; clients are expected to time out first.
    public var hangDuration: Duration = .seconds(5)
    /// `Retry-After` sent with injected 429s (seconds); nil sends none, as HubSpot sometimes does.
    public var retryAfterSeconds: Int? = 1

    public init() {}

    public static let none = FaultSpec()

    public static var all: FaultSpec {
        var spec = FaultSpec()
        spec.rateLimited = 0.03
        spec.serverError = 0.02
        spec.unavailable = 0.02
        spec.slow = 0.02
        spec.hang = 0.005
        spec.truncate = 0.02
        spec.repeatRecords = 0.05
        spec.mutate = 0.05
        spec.outOfOrder = 0.03
        return spec
    }

    public var isEmpty: Bool { self == .none }

    public enum ParseError: Error, CustomStringConvertible {
        case bad(String)
        public var description: String {
            switch self {
            case .bad(let part): "--faults: cannot read '\(part)' (expected kind=probability, kinds: 429, 500, 503, slow, hang, truncate, repeat, mutate, out_of_order, or 'all')"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        self.init()
        if text.trimmingCharacters(in: .whitespaces) == "all" {
            self = .all
            return
        }
        for part in text.split(separator: ",") where !part.isEmpty {
            let pieces = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard pieces.count == 2, let value = Double(pieces[1]), (0...1).contains(value) else { throw .bad(String(part)) }
            switch pieces[0] {
            case "429": rateLimited = value
            case "500": serverError = value
            case "503": unavailable = value
            case "slow": slow = value
            case "hang": hang = value
            case "truncate": truncate = value
            case "repeat": repeatRecords = value
            case "mutate": mutate = value
            case "out_of_order": outOfOrder = value
            default: throw .bad(String(part))
            }
        }
    }
}

/// A small deterministic generator (SplitMix64): the same seed gives the same CRM.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func chance(_ p: Double) -> Bool { p > 0 && Double.random(in: 0..<1, using: &self) < p }
}
