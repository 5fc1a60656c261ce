import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

@Suite struct ReconciliationTests {
    let mapping = StageMapping(
        crm: .hubspot,
        pipelines: ["default": .init(id: "default", stages: ["appointmentscheduled": .sql, "closedwon": .closedWon])],
        salesOwned: [.sql])
    let t0 = Date(timeIntervalSince1970: 1_790_000_000)

    func deal(_ id: String, stage: String, modified: Date, amount: Decimal = 1000, history: [StageChange] = []) -> CRMDeal {
        CRMDeal(externalID: id, name: "Deal \(id)", amount: amount, currency: "jpy", pipeline: "default", stage: stage,
                createdAt: t0, modifiedAt: modified, contactIDs: ["c1"], stageHistory: history)
    }

    @Test func anOlderVersionNeverOverwritesANewerOne() async throws {
        try await TestDatabase.with { client, _ in
            let writer = RecordWriter(connector: "hs", mapping: mapping)
            var newer = RecordBatch()
            newer.deals = [deal("1", stage: "closedwon", modified: t0.addingTimeInterval(60), amount: 2000)]
            _ = try await writer.commit(newer, cursor: nil, client: client, logger: TestDatabase.logger)
            var older = RecordBatch()
            older.deals = [deal("1", stage: "appointmentscheduled", modified: t0, amount: 1000)]
            let outcome = try await writer.commit(older, cursor: nil, client: client, logger: TestDatabase.logger)
            #expect(outcome.stale == 1)
            let row = try await client.query(
                "SELECT stage, canonical_stage, amount::text, currency, is_won FROM reporting.deals WHERE external_id = '1'",
                logger: TestDatabase.logger
            ).collect().first!.decode((String, String, String, String, Bool).self)
            #expect(row.0 == "closedwon")
            #expect(row.1 == "closed_won")
            #expect(row.2 == "2000")
            #expect(row.3 == "JPY")
            #expect(row.4)
        }
    }

    @Test func replayedHistoryAddsNothingAndUnmappedStagesAreKept() async throws {
        try await TestDatabase.with { client, _ in
            let writer = RecordWriter(connector: "hs", mapping: mapping)
            let history = [StageChange(stage: "appointmentscheduled", enteredAt: t0), StageChange(stage: "custom_stage", enteredAt: t0.addingTimeInterval(86_400))]
            var batch = RecordBatch()
            batch.deals = [deal("7", stage: "custom_stage", modified: t0.addingTimeInterval(86_400), history: history),
                           deal("7", stage: "custom_stage", modified: t0.addingTimeInterval(86_400), history: history)]
            let first = try await writer.commit(batch, cursor: ("deals", SyncCursor(modifiedAt: t0, idsAtModifiedAt: ["7"])), client: client, logger: TestDatabase.logger)
            #expect(first.stageChanges == 2)
            #expect(first.unmappedStages == ["custom_stage"])
            let again = try await writer.commit(batch, cursor: nil, client: client, logger: TestDatabase.logger)
            #expect(again.stageChanges == 0)
            let rows = try await client.query(
                "SELECT stage, canonical_stage FROM reporting.stage_history WHERE deal_external_id = '7'", logger: TestDatabase.logger
            ).collect()
            #expect(rows.count == 2)
            let unmapped = try await client.query("SELECT stage FROM reporting.unmapped_stages", logger: TestDatabase.logger).collect()
            #expect(try unmapped.map { try $0.decode(String.self) } == ["custom_stage"])
            let cursor = try await CursorStore.load(connector: "hs", stream: "deals", client: client, logger: TestDatabase.logger)
            #expect(cursor == SyncCursor(modifiedAt: t0, idsAtModifiedAt: ["7"]))
        }
    }

    @Test func aFailedPageLeavesNeitherRowsNorCursor() async throws {
        try await TestDatabase.with { client, _ in
            let writer = RecordWriter(connector: "hs", mapping: mapping)
            var batch = RecordBatch()
            batch.deals = [deal("1", stage: "closedwon", modified: t0)]
            batch.contacts = [CRMContact(externalID: "c1", email: "a@example.com", name: nil, company: nil, owner: nil, modifiedAt: t0)]
            // Break the transaction half way: the cursor write fails on a constraint, after the rows.
            try await client.query("ALTER TABLE crm.sync_cursors ADD CONSTRAINT no_deals CHECK (stream <> 'deals')", logger: TestDatabase.logger)
            await #expect(throws: (any Error).self) {
                _ = try await writer.commit(batch, cursor: ("deals", SyncCursor(modifiedAt: t0)), client: client, logger: TestDatabase.logger)
            }
            let counts = try await client.query(
                "SELECT (SELECT count(*) FROM crm.deals)::int8, (SELECT count(*) FROM crm.contacts)::int8", logger: TestDatabase.logger
            ).collect().first!.decode((Int64, Int64).self)
            #expect(counts.0 == 0 && counts.1 == 0)
        }
    }
}
