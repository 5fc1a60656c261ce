import CRMSyncCore
import Foundation
import Logging
import PostgresNIO

/// Writes a page of CRM records, and the cursor that covers it, in one transaction.
///
/// Rows travel as one JSON parameter expanded by `json_to_recordset`: one round trip per table and
/// page, parameterised, NULL-safe, with numeric text kept exact. A row is only replaced by a version
/// whose CRM modification stamp is not older, so a late page never overwrites newer data.
public struct RecordWriter: Sendable {
    public var connector: String
    public var mapping: StageMapping

    public init(connector: String, mapping: StageMapping) {
        self.connector = connector
        self.mapping = mapping
    }

    public struct Outcome: Sendable, Equatable {
        public var written = 0
        public var stale = 0
        public var stageChanges = 0
        public var deletions = 0
        public var unmappedStages: Set<String> = []
    }

    /// Commits `batch` and, when given, the cursor for `objectType` atomically.
    public func commit(
        _ batch: RecordBatch, cursor: (stream: String, cursor: SyncCursor)?, client: PostgresClient, logger: Logger
    ) async throws -> Outcome {
        try await client.withTransaction(logger: logger) { connection in
            try await write(batch, cursor: cursor, on: connection, logger: logger)
        }
    }

    public func write(
        _ batch: RecordBatch, cursor: (stream: String, cursor: SyncCursor)?, on connection: PostgresConnection, logger: Logger
    ) async throws -> Outcome {
        var outcome = Outcome()
        if !batch.owners.isEmpty {
            let rows = Self.newest(batch.owners, id: \.externalID, stamp: \.modifiedAt).map(OwnerRow.init)
            let applied = try await upsert(
                table: "crm.owners", columns: OwnerRow.columns, rows: rows, on: connection, logger: logger)
            outcome.written += applied.count
            outcome.stale += rows.count - applied.count
        }
        if !batch.accounts.isEmpty {
            let rows = Self.newest(batch.accounts, id: \.externalID, stamp: \.modifiedAt).map(AccountRow.init)
            let applied = try await upsert(
                table: "crm.accounts", columns: AccountRow.columns, rows: rows, on: connection, logger: logger)
            outcome.written += applied.count
            outcome.stale += rows.count - applied.count
        }
        if !batch.contacts.isEmpty {
            let rows = Self.newest(batch.contacts, id: \.externalID, stamp: \.modifiedAt).map(ContactRow.init)
            let applied = try await upsert(
                table: "crm.contacts", columns: ContactRow.columns, rows: rows, on: connection, logger: logger)
            outcome.written += applied.count
            outcome.stale += rows.count - applied.count
        }
        if !batch.deals.isEmpty {
            try await writeDeals(batch.deals, replacingContactLinks: batch.dealsCarryContactLinks, outcome: &outcome,
                                 on: connection, logger: logger)
        }
        if !batch.stageChanges.isEmpty {
            try await writeStageChanges(batch.stageChanges, outcome: &outcome, on: connection, logger: logger)
        }
        if !batch.dealContactLinks.isEmpty {
            try await writeDealContactLinks(batch.dealContactLinks, on: connection, logger: logger)
        }
        if !batch.activities.isEmpty {
            let rows = Self.newest(batch.activities, id: \.externalID, stamp: \.modifiedAt).map(ActivityRow.init)
            let applied = try await upsert(
                table: "crm.activities", columns: ActivityRow.columns, rows: rows, on: connection, logger: logger)
            outcome.written += applied.count
            outcome.stale += rows.count - applied.count
        }
        if !batch.campaigns.isEmpty {
            try await writeCampaigns(batch.campaigns, outcome: &outcome, on: connection, logger: logger)
        }
        if !batch.campaignMembers.isEmpty {
            try await writeCampaignMembers(batch.campaignMembers, outcome: &outcome, on: connection, logger: logger)
        }
        if !batch.deletions.isEmpty {
            outcome.deletions = try await applyDeletions(batch.deletions, on: connection, logger: logger)
        }
        if let (stream, cursor) = cursor {
            try await CursorStore.save(
                connector: connector, stream: stream, cursor: cursor, on: connection, logger: logger)
        }
        return outcome
    }

    private func writeDeals(
        _ deals: [CRMDeal], replacingContactLinks: Bool, outcome: inout Outcome, on connection: PostgresConnection,
        logger: Logger
    ) async throws {
        let newest = Self.newest(deals, id: \.externalID, stamp: \.modifiedAt)
        var rows: [DealRow] = []
        var history: [HistoryRow] = []
        for deal in newest {
            let canonical = mapping.canonicalStage(pipeline: deal.pipeline, stage: deal.stage)
            if canonical == nil, let stage = deal.stage { outcome.unmappedStages.insert(stage) }
            rows.append(DealRow(deal, canonical: canonical))
            // In the CRM's order (oldest first): entries that share a timestamp keep it through `crm_order`.
            for (order, change) in deal.stageHistory.uniqued().enumerated() {
                history.append(HistoryRow(
                    deal_external_id: deal.externalID, stage: change.stage,
                    canonical_stage: mapping.canonicalStage(pipeline: deal.pipeline, stage: change.stage)?.rawValue,
                    entered_at: change.enteredAt, crm_order: order + 1))
            }
        }
        let applied = Set(try await upsert(
            table: "crm.deals", columns: DealRow.columns, rows: rows, on: connection, logger: logger))
        outcome.written += applied.count
        outcome.stale += rows.count - applied.count

        // Associations follow the version that won: replace them only for deals actually written.
        let current = newest.filter { applied.contains($0.externalID) }
        if !current.isEmpty {
            let ids = current.map(\.externalID)
            if replacingContactLinks {
                try await connection.query(
                    "DELETE FROM crm.deal_contacts WHERE connector = \(connector) AND deal_external_id = ANY(\(ids))",
                    logger: logger)
            }
            try await connection.query(
                "DELETE FROM crm.deal_accounts WHERE connector = \(connector) AND deal_external_id = ANY(\(ids))",
                logger: logger)
            let contactLinks = replacingContactLinks
                ? current.flatMap { deal in Set(deal.contactIDs).map { LinkRow(deal_external_id: deal.externalID, other: $0) } } : []
            let accountLinks = current.flatMap { deal in Set(deal.accountIDs).map { LinkRow(deal_external_id: deal.externalID, other: $0) } }
            if !contactLinks.isEmpty {
                try await connection.query(
                    """
                    INSERT INTO crm.deal_contacts (connector, deal_external_id, contact_external_id)
                    SELECT \(connector), r.deal_external_id, r.other FROM json_to_recordset(\(try Self.json(contactLinks))::json)
                        AS r(deal_external_id text, other text)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
            if !accountLinks.isEmpty {
                try await connection.query(
                    """
                    INSERT INTO crm.deal_accounts (connector, deal_external_id, account_external_id)
                    SELECT \(connector), r.deal_external_id, r.other FROM json_to_recordset(\(try Self.json(accountLinks))::json)
                        AS r(deal_external_id text, other text)
                    ON CONFLICT DO NOTHING
                    """, logger: logger)
            }
        }
        // Merged-away deals: tombstoned and pointed at the survivor.
        let merges = newest.flatMap { deal in
            deal.mergedFrom.map { Deletion(objectType: .deals, externalID: $0, deletedAt: deal.modifiedAt, mergedInto: deal.externalID) }
        }
        if !merges.isEmpty { outcome.deletions += try await applyDeletions(merges, on: connection, logger: logger) }

        // History is append-only and keyed on (deal, stage, entered_at): replays add nothing.
        if !history.isEmpty {
            let rows = try await connection.query(
                """
                INSERT INTO crm.stage_history (connector, deal_external_id, stage, canonical_stage, entered_at, source, crm_order)
                SELECT \(connector), r.deal_external_id, r.stage, r.canonical_stage, r.entered_at, 'poll', r.crm_order
                  FROM json_to_recordset(\(try Self.json(history))::json)
                    AS r(deal_external_id text, stage text, canonical_stage text, entered_at timestamptz, crm_order integer)
                ON CONFLICT DO NOTHING
                RETURNING 1
                """, logger: logger
            ).collect()
            outcome.stageChanges += rows.count
        }
    }

    /// Marks records deleted (or merged) without letting an older version resurrect them later: the
    /// tombstone carries the deletion time as its modification stamp.
    private func applyDeletions(_ deletions: [Deletion], on connection: PostgresConnection, logger: Logger) async throws -> Int {
        var count = 0
        let byType = Dictionary(grouping: deletions, by: \.objectType)
        for (type, items) in byType {
            guard let table = Self.table(for: type) else { continue }
            let rows = items.map { DeletionRow(external_id: $0.externalID, deleted_at: $0.deletedAt, merged_into: $0.mergedInto) }
            let mergeColumn = ["crm.accounts", "crm.contacts", "crm.deals"].contains(table)
            let updated = try await connection.query(
                PostgresQuery(unsafeSQL: """
                    UPDATE \(table) t
                       SET deleted = true,
                           \(mergeColumn ? "merged_into = coalesce(r.merged_into, t.merged_into)," : "")
                           modified_at = greatest(t.modified_at, r.deleted_at), synced_at = now()
                      FROM json_to_recordset($2::json) AS r(external_id text, deleted_at timestamptz, merged_into text)
                     WHERE t.connector = $1 AND t.external_id = r.external_id
                       AND (NOT t.deleted\(mergeColumn ? " OR t.merged_into IS DISTINCT FROM coalesce(r.merged_into, t.merged_into)" : ""))
                    RETURNING 1
                    """, binds: try Self.binds(connector, Self.json(rows))),
                logger: logger
            ).collect()
            count += updated.count
        }
        return count
    }

    static func table(for type: ObjectType) -> String? {
        switch type {
        case .owners: "crm.owners"
        case .accounts: "crm.accounts"
        case .contacts: "crm.contacts"
        case .deals: "crm.deals"
        case .activities: "crm.activities"
        case .stageHistory, .dealContacts, .campaigns, .campaignMembers: nil
        }
    }

    /// Generic "insert or replace if not older" for a table keyed on (connector, external_id).
    /// Column names come from the row types in this file, never from input.
    private func upsert<Row: Encodable>(
        table: String, columns: [(name: String, type: String)], rows: [Row], on connection: PostgresConnection,
        logger: Logger
    ) async throws -> [String] {
        let names = columns.map(\.name)
        let updates = names.filter { $0 != "external_id" }.map { "\($0) = EXCLUDED.\($0)" } + ["synced_at = now()"]
        let sql = """
            INSERT INTO \(table) (connector, \(names.joined(separator: ", ")))
            SELECT $1, \(names.map { "r.\($0)" }.joined(separator: ", "))
              FROM json_to_recordset($2::json) AS r(\(columns.map { "\($0.name) \($0.type)" }.joined(separator: ", ")))
            ON CONFLICT (connector, external_id) DO UPDATE SET \(updates.joined(separator: ", "))
             WHERE \(table).modified_at <= EXCLUDED.modified_at
            RETURNING external_id
            """
        var applied: [String] = []
        for try await id in try await connection.query(
            PostgresQuery(unsafeSQL: sql, binds: try Self.binds(connector, Self.json(rows))), logger: logger
        ).decode(String.self) {
            applied.append(id)
        }
        return applied
    }

    static func binds(_ values: String...) throws -> PostgresBindings {
        var bindings = PostgresBindings()
        for value in values { bindings.append(value) }
        return bindings
    }

    /// Keeps one version per id: the newest by the CRM's stamp (pages may repeat records).
    static func newest<T>(_ items: [T], id: KeyPath<T, String>, stamp: KeyPath<T, Date>) -> [T] {
        var best: [String: T] = [:]
        var order: [String] = []
        for item in items {
            let key = item[keyPath: id]
            if let existing = best[key] {
                if item[keyPath: stamp] >= existing[keyPath: stamp] { best[key] = item }
            } else {
                best[key] = item
                order.append(key)
            }
        }
        return order.map { best[$0]! }
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(CRMTimestamp.iso(date))
        }
        return encoder
    }()

    static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

// Row shapes for json_to_recordset; property names are the column names.

/// Money and margins travel as decimal text so no binary floating point touches them.
private func text(_ decimal: Decimal?) -> String? {
    decimal.map { NSDecimalNumber(decimal: $0).description(withLocale: Locale(identifier: "en_US_POSIX")) }
}

struct OwnerRow: Encodable {
    static let columns: [(name: String, type: String)] = [
        ("external_id", "text"), ("email", "text"), ("name", "text"), ("modified_at", "timestamptz"), ("deleted", "boolean"),
    ]
    var external_id: String, email: String?, name: String?, modified_at: Date, deleted: Bool
    init(_ o: CRMOwner) {
        external_id = o.externalID; email = o.email; name = o.name; modified_at = o.modifiedAt; deleted = o.deleted
    }
}

struct AccountRow: Encodable {
    static let columns: [(name: String, type: String)] = [
        ("external_id", "text"), ("name", "text"), ("domain", "text"), ("owner", "text"),
        ("modified_at", "timestamptz"), ("deleted", "boolean"), ("merged_into", "text"),
    ]
    var external_id: String, name: String?, domain: String?, owner: String?, modified_at: Date, deleted: Bool
    var merged_into: String?
    init(_ a: CRMAccount) {
        external_id = a.externalID; name = a.name; domain = a.domain; owner = a.owner; modified_at = a.modifiedAt
        deleted = a.deleted; merged_into = a.mergedInto
    }
}

struct ContactRow: Encodable {
    static let columns: [(name: String, type: String)] = [
        ("external_id", "text"), ("email", "text"), ("name", "text"), ("company", "text"),
        ("account_external_id", "text"), ("owner", "text"), ("lifecycle_stage", "text"),
        ("modified_at", "timestamptz"), ("deleted", "boolean"), ("merged_into", "text"),
    ]
    var external_id: String, email: String?, name: String?, company: String?, account_external_id: String?
    var owner: String?, lifecycle_stage: String?, modified_at: Date, deleted: Bool, merged_into: String?
    init(_ c: CRMContact) {
        external_id = c.externalID; email = c.email; name = c.name; company = c.company
        account_external_id = c.accountID; owner = c.owner; lifecycle_stage = c.lifecycleStage
        modified_at = c.modifiedAt; deleted = c.deleted; merged_into = c.mergedInto
    }
}

struct DealRow: Encodable {
    static let columns: [(name: String, type: String)] = [
        ("external_id", "text"), ("name", "text"), ("amount", "numeric"), ("currency", "text"), ("pipeline", "text"),
        ("stage", "text"), ("canonical_stage", "text"), ("owner", "text"), ("created_at", "timestamptz"),
        ("closed_at", "timestamptz"), ("is_closed", "boolean"), ("is_won", "boolean"), ("gross_margin", "numeric"),
        ("modified_at", "timestamptz"), ("deleted", "boolean"), ("merged_into", "text"),
    ]
    var external_id: String, name: String?, amount: String?, currency: String?, pipeline: String?, stage: String?
    var canonical_stage: String?, owner: String?, created_at: Date?, closed_at: Date?, is_closed: Bool, is_won: Bool
    var gross_margin: String?, modified_at: Date, deleted: Bool, merged_into: String?
    init(_ d: CRMDeal, canonical: CanonicalStage?) {
        external_id = d.externalID; name = d.name; amount = text(d.amount); currency = d.currency?.uppercased()
        pipeline = d.pipeline; stage = d.stage; canonical_stage = canonical?.rawValue; owner = d.owner
        created_at = d.createdAt; closed_at = d.closedAt; is_closed = canonical?.isClosed ?? false
        is_won = canonical == .closedWon; gross_margin = text(d.grossMargin); modified_at = d.modifiedAt
        deleted = d.deleted; merged_into = d.mergedInto
    }
}

struct ActivityRow: Encodable {
    static let columns: [(name: String, type: String)] = [
        ("external_id", "text"), ("kind", "text"), ("subject", "text"), ("owner", "text"),
        ("contact_external_ids", "text[]"), ("deal_external_ids", "text[]"), ("occurred_at", "timestamptz"),
        ("modified_at", "timestamptz"), ("deleted", "boolean"),
    ]
    var external_id: String, kind: String, subject: String?, owner: String?, contact_external_ids: [String]
    var deal_external_ids: [String], occurred_at: Date, modified_at: Date, deleted: Bool
    init(_ a: CRMActivity) {
        external_id = a.externalID; kind = a.kind.rawValue; subject = a.subject; owner = a.owner
        contact_external_ids = a.contactIDs; deal_external_ids = a.dealIDs; occurred_at = a.occurredAt
        modified_at = a.modifiedAt; deleted = a.deleted
    }
}

struct HistoryRow: Encodable {
    var deal_external_id: String, stage: String, canonical_stage: String?, entered_at: Date
    /// The entry's 1-based place in the history as the CRM gave it in this write.
    var crm_order: Int
}

extension Sequence where Element: Hashable {
    /// The elements without repeats, first occurrence kept, in their order.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}

struct LinkRow: Encodable {
    var deal_external_id: String, other: String
}

struct DeletionRow: Encodable {
    var external_id: String, deleted_at: Date, merged_into: String?
}
