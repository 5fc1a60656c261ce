import Foundation

/// A stage a deal entered, reported as a row of its own rather than inside the deal (Salesforce
/// `OpportunityHistory`), so history can be written without a full copy of the deal.
public struct DealStageChange: Sendable, Equatable, Hashable, Codable {
    public var dealID: String
    /// The deal's pipeline, to map the stage onto the canonical ladder.
    public var pipeline: String?
    public var change: StageChange

    public init(dealID: String, pipeline: String?, change: StageChange) {
        self.dealID = dealID
        self.pipeline = pipeline
        self.change = change
    }
}

/// A deal↔contact link reported as a row of its own (Salesforce `OpportunityContactRole`).
/// `removed` links (the role was deleted) are taken out of the stored links.
public struct DealContactLink: Sendable, Equatable, Hashable, Codable {
    public var dealID: String
    public var contactID: String
    public var removed: Bool

    public init(dealID: String, contactID: String, removed: Bool = false) {
        self.dealID = dealID
        self.contactID = contactID
        self.removed = removed
    }
}
