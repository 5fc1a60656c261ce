import CRMSyncServer
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// An event that cannot be applied lands in crm.dead_letters with its reason and comes back with
/// `crm-sync inbox replay` once the cause is fixed, with exactly one effect.
@Suite struct InboxReplayTests {
    let cli = CommandLineTests()

    func event(_ id: String, externalID: String, email: String?) -> InboxEvent {
        let contact = email.map { #"{"external_id": "\#(externalID)", "email": "\#($0)"}"# } ?? #"{"external_id": "\#(externalID)"}"#
        let payload = #"{"type": "email.clicked", "id": "\#(id)", "occurred_at": "2026-11-02T01:23:45Z", "contact": \#(contact), "campaign": "wp", "step": 1}"#
        return try! EngagementEventParser.parse(Data(payload.utf8))[0]
    }

    func count(_ client: PostgresClient, _ sql: String) async throws -> Int64 {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).collect().first!.decode(Int64.self)
    }

    @Test func unattributableEventsAreDeadLetteredAndReplayedOnceTheConnectorIsSynced() async throws {
        try await TestDatabase.with { client, url in
            let env = ["DATABASE_URL": TestDatabase.text(url)]
            try await DirectInboxWriter(client: client, logger: TestDatabase.logger).store(source: "events", events: [
                event("e1", externalID: "acme-crm:501", email: nil),
                event("e2", externalID: "acme-crm:502", email: nil),
                event("e3", externalID: "acme-crm:503", email: "someone@example.com"),
            ])
            let first = try await InboxProcessor(client: client, logger: TestDatabase.logger).drain()
            #expect(first == .init(applied: 1, deadLettered: 2))
            let reasons = try await client.query("SELECT reason FROM crm.dead_letters", logger: TestDatabase.logger).collect().map { try $0.decode(String.self) }
            #expect(reasons.count == 2 && reasons.allSatisfy { $0.contains("no synced connector") })

            // Still unresolvable: replaying files new dead letters, and no touch appears.
            let again = try await cli.run(["inbox", "replay"], environment: env)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout.contains("2 re-queued; applied 0, dead-lettered again 2"), "\(again.stdout)")
            #expect(try await count(client, "SELECT count(*)::int8 FROM crm.dead_letters WHERE replayed_at IS NULL") == 2)

            // The cause is fixed (the connector is synced); one dead letter by id, then the rest.
            try await client.query("INSERT INTO crm.connectors (name, kind, base_url) VALUES ('acme-crm', 'hubspot', 'http://x')", logger: TestDatabase.logger)
            let one = try await count(client, "SELECT min(id)::int8 FROM crm.dead_letters WHERE replayed_at IS NULL")
            let byID = try await cli.run(["inbox", "replay", "--id", "\(one)"], environment: env)
            #expect(byID.stdout.contains("1 re-queued; applied 1, dead-lettered again 0"), "\(byID.stdout) \(byID.stderr)")
            let rest = try await cli.run(["inbox", "replay"], environment: env)
            #expect(rest.stdout.contains("1 re-queued; applied 1, dead-lettered again 0"), "\(rest.stdout) \(rest.stderr)")
            let nothing = try await cli.run(["inbox", "replay", "--id", "\(one)"], environment: env)
            #expect(nothing.status != 0 && nothing.stderr.contains("no open dead letter with id \(one)"), "\(nothing.stderr)")

            #expect(try await count(client, "SELECT count(*)::int8 FROM crm.touches") == 3)
            #expect(try await count(client, "SELECT count(*)::int8 FROM crm.touches WHERE connector = 'acme-crm' AND contact_external_id IN ('501', '502')") == 2)
            #expect(try await count(client, "SELECT count(*)::int8 FROM crm.dead_letters WHERE replayed_at IS NULL") == 0)
            let help = try await cli.run(["inbox", "replay", "--help"])
            #expect(help.status == 0 && help.stdout.contains("--id"))
        }
    }
}
