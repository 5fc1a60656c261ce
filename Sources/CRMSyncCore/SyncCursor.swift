import Foundation

/// Where an incremental sync of one object type stands.
///
/// The cursor is the highest modification stamp that has been fully written, plus the ids already
/// written *at exactly that stamp*. Resuming with `>=` on the stamp and skipping those ids loses no
/// record that shares the stamp at a page boundary (the strict-`>` trap) and doubles none; the
/// idempotent upsert absorbs whatever the look-back overlap re-reads.
public struct SyncCursor: Sendable, Equatable, Codable {
    public var modifiedAt: Date?
    public var idsAtModifiedAt: Set<String>

    public init(modifiedAt: Date? = nil, idsAtModifiedAt: Set<String> = []) {
        self.modifiedAt = modifiedAt
        self.idsAtModifiedAt = idsAtModifiedAt
    }

    public static let start = SyncCursor()

    /// The stamp to query from (`>=`). A look-back overlap re-reads recent changes, because search
    /// indexes are eventually consistent and stamps can arrive out of order.
    public func anchor(overlap: Duration) -> Date? {
        guard let modifiedAt else { return nil }
        return modifiedAt.addingTimeInterval(-overlap.seconds)
    }

    /// Whether a record was already covered by this cursor when the query is re-anchored exactly at
    /// the cursor (no overlap).
    public func covers(id: String, modifiedAt stamp: Date) -> Bool {
        guard let modifiedAt else { return false }
        if stamp < modifiedAt { return true }
        return stamp == modifiedAt && idsAtModifiedAt.contains(id)
    }

    /// The cursor after writing records, given in the order the CRM returned them (ascending stamp).
    /// A stamp lower than the cursor (an out-of-order record re-read by the overlap) never moves it back.
    public func advanced<S: Sequence>(over records: S) -> SyncCursor where S.Element == (id: String, modifiedAt: Date) {
        var next = self
        for record in records {
            if let current = next.modifiedAt {
                if record.modifiedAt > current {
                    next.modifiedAt = record.modifiedAt
                    next.idsAtModifiedAt = [record.id]
                } else if record.modifiedAt == current {
                    next.idsAtModifiedAt.insert(record.id)
                }
            } else {
                next.modifiedAt = record.modifiedAt
                next.idsAtModifiedAt = [record.id]
            }
        }
        return next
    }
}
