import CRMSyncCore
import Foundation

/// One page of changes from a CRM, in the CRM's modification order.
public struct ChangePage: Sendable {
    public var batch: RecordBatch
    /// (id, stamp) of the records that advance the cursor, in the order returned.
    public var stamps: [(id: String, modifiedAt: Date)]
    /// Ids the CRM reported for this object type (for `--full`'s vanished-record check).
    public var ids: [String]

    public init(batch: RecordBatch, stamps: [(id: String, modifiedAt: Date)], ids: [String]) {
        self.batch = batch
        self.stamps = stamps
        self.ids = ids
    }
}

/// Yields pages until the CRM has nothing newer.
public protocol ChangePager: Sendable {
    mutating func next() async throws -> ChangePage?
}

/// One incremental feed of a CRM with a cursor of its own: HubSpot calls and meetings are separate
/// streams of the same object type, each sorted by its own modification stamp.
public struct SyncStream: Sendable, Hashable {
    /// The cursor's key, e.g. `deals`, `calls`, `OpportunityHistory`.
    public var key: String
    public var objectType: ObjectType

    public init(_ key: String, _ objectType: ObjectType) {
        self.key = key
        self.objectType = objectType
    }
}

/// A CRM the sync engine can poll incrementally.
public protocol CRMConnector: Sendable {
    var name: String { get }
    var kind: CRMKind { get }
    /// Streams in the order a run visits them: records others refer to come first.
    var streams: [SyncStream] { get }
    /// Changes modified at or after `anchor` (everything when `nil`), skipping records the cursor
    /// already covers at exactly the anchor.
    func pager(for stream: SyncStream, anchor: Date?, cursor: SyncCursor) -> any ChangePager
    /// Records the CRM's delete channel reports as deleted since `since`.
    func deletions(for stream: SyncStream, since: Date?) async throws -> [Deletion]
    /// The shared HTTP client, with its request counters.
    var http: CRMHTTPClient { get }
}

/// CRMs that list their deal pipelines and stages: HubSpot and Pipedrive their pipelines,
/// Salesforce its one Opportunity stage picklist (`OpportunityStage`).
public protocol PipelineListing: Sendable {
    func pipelineStages() async throws -> [PipelineStage]
}

