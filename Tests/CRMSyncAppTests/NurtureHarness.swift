import CRMSyncApp
import CRMSyncConfig
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO

/// The shipped sequences and HubSpot mapping on a fresh database, a fake clock, and helpers that
/// write what the sync and the webhook receiver would write (contacts, deals, activities, touches).
struct NurtureHarness {
    let client: PostgresClient
    let definitions: NurtureDefinitions
    let logger = TestDatabase.logger
    static let connector = "hs"

    init(client: PostgresClient) throws {
        self.client = client
        let root = TestDatabase.packageRoot
        let sequences = try SequenceLoader.loadDirectory("\(root)/Mappings/sequences")
        let mapping = try MappingLoader.load(path: "\(root)/Mappings/hubspot.yaml")
        definitions = NurtureDefinitions(sequences: sequences, policies: [
            ConnectorNurturePolicy(connector: Self.connector, salesOwned: mapping.salesOwned, policy: mapping.policy)
        ])
    }

    static func at(_ text: String) -> Date { CRMTimestamp.parse(text)! }
    static func iso(_ date: Date) -> String { String(CRMTimestamp.iso(date).prefix(19)) + "Z" }

    @discardableResult
    func tick(_ now: Date) async throws -> NurtureTick.Summary {
        try await NurtureTick(client: client, logger: logger).run(definitions: definitions, now: now)
    }

    func contact(_ id: String, owner: String? = "owner-1") async throws {
        try await client.query(
            """
            INSERT INTO crm.contacts (connector, external_id, email, name, owner, modified_at)
            VALUES (\(Self.connector), \(id), \(id + "@example.co.jp"), \(id), \(owner), '2026-01-01')
            """, logger: logger)
    }

    func touch(_ kind: String, _ contact: String, at: Date, campaign: String? = nil, sequence: String? = nil, step: Int? = nil, url: String? = nil) async throws {
        try await client.query(
            """
            INSERT INTO crm.touches (touch_key, connector, contact_external_id, email, campaign, kind, occurred_at, sequence, step, url)
            VALUES (\(UUID().uuidString), \(Self.connector), \(contact), \(contact + "@example.co.jp"), \(campaign), \(kind), \(at),
                    \(sequence), \(step), \(url))
            """, logger: logger)
    }

    /// The deal as the sync writes it: the current stage on the deal, and a stage-history row.
    func deal(_ id: String, contact: String, stage: String, canonical: String, at: Date, owner: String = "owner-1") async throws {
        try await client.query(
            """
            INSERT INTO crm.deals (connector, external_id, name, pipeline, stage, canonical_stage, owner, created_at, modified_at,
                                   is_closed, is_won)
            VALUES (\(Self.connector), \(id), \(id), 'default', \(stage), \(canonical), \(owner), \(at), \(at),
                    \(canonical.hasPrefix("closed")), \(canonical == "closed_won"))
            ON CONFLICT (connector, external_id) DO UPDATE
               SET stage = EXCLUDED.stage, canonical_stage = EXCLUDED.canonical_stage, modified_at = EXCLUDED.modified_at,
                   is_closed = EXCLUDED.is_closed, is_won = EXCLUDED.is_won
            """, logger: logger)
        try await client.query(
            """
            INSERT INTO crm.deal_contacts (connector, deal_external_id, contact_external_id) VALUES (\(Self.connector), \(id), \(contact))
            ON CONFLICT DO NOTHING
            """, logger: logger)
        try await client.query(
            """
            INSERT INTO crm.stage_history (connector, deal_external_id, stage, canonical_stage, entered_at)
            VALUES (\(Self.connector), \(id), \(stage), \(canonical), \(at))
            """, logger: logger)
    }

    func activity(_ id: String, kind: String, contact: String, at: Date, owner: String = "owner-1") async throws {
        try await client.query(
            """
            INSERT INTO crm.activities (connector, external_id, kind, subject, owner, contact_external_ids, occurred_at, modified_at)
            VALUES (\(Self.connector), \(id), \(kind), 'call', \(owner), \([contact]), \(at), \(at))
            """, logger: logger)
    }

    struct Command: Equatable, CustomStringConvertible {
        var type: String
        var destination: String
        var contact: String
        var sequence: String?
        var step: Int?
        var createdAt: Date
        var payload: String
        var description: String { "\(type) \(sequence ?? "-") step \(step.map(String.init) ?? "-") at \(NurtureHarness.iso(createdAt)) → \(destination)" }
    }

    func commands(_ type: String? = nil, contact: String? = nil) async throws -> [Command] {
        let rows = try await client.query(
            """
            SELECT command_type, destination, payload #>> '{contact,external_id}', payload ->> 'sequence',
                   (payload ->> 'step')::int, created_at, payload::text
              FROM crm.outbox
             WHERE (\(type)::text IS NULL OR command_type = \(type))
               AND (\(contact.map { "\(Self.connector):\($0)" })::text IS NULL OR payload #>> '{contact,external_id}' = \(contact.map { "\(Self.connector):\($0)" }))
             ORDER BY created_at, id
            """, logger: logger
        ).collect()
        return try rows.map {
            let (type, destination, contact, sequence, step, createdAt, payload) = try $0.decode((String, String, String, String?, Int?, Date, String).self)
            return Command(type: type, destination: destination, contact: contact, sequence: sequence, step: step, createdAt: createdAt, payload: payload)
        }
    }

    struct Enrollment: Equatable {
        var sequence: String
        var step: Int
        var status: String
        var pausedReason: String?
        var nextDue: Date?
    }

    func enrollments(_ contact: String) async throws -> [String: Enrollment] {
        let rows = try await client.query(
            """
            SELECT sequence, step, status, paused_reason, next_step_due_at FROM crm.enrollments
             WHERE connector = \(Self.connector) AND contact_external_id = \(contact)
             ORDER BY enrolled_at, id   -- a sequence run again: its latest run
            """, logger: logger
        ).collect()
        var result: [String: Enrollment] = [:]
        for row in rows {
            let (sequence, step, status, reason, due) = try row.decode((String, Int, String, String?, Date?).self)
            result[sequence] = Enrollment(sequence: sequence, step: step, status: status, pausedReason: reason, nextDue: due)
        }
        return result
    }

    func outboxCount() async throws -> Int {
        try await Int(client.query("SELECT count(*)::int8 FROM crm.outbox", logger: logger).collect().first!.decode(Int64.self))
    }
}
