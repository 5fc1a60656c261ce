import AsyncHTTPClient
import CRMSimulator
import CRMSyncApp
import CRMSyncConfig
import CRMSyncConnectors
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// The reporting views are current when a command that wrote CRM or marketing data finishes, with
/// no `report roi` in between (issue 12, part 2): what an analyst sees in psql right after a sync
/// or an inbox pass.
@Suite struct ReportingFreshnessTests {
    static let root = TestDatabase.packageRoot
    let logger = TestDatabase.logger

    func connectorConfig(port: Int) throws -> ConnectorConfig {
        ConnectorConfig(
            name: "hs", kind: .hubspot, baseURL: "http://127.0.0.1:\(port)", token: "sim-token",
            mappingPath: "\(Self.root)/Mappings/hubspot.yaml",
            mapping: try MappingLoader.load(path: "\(Self.root)/Mappings/hubspot.yaml"),
            overlap: .seconds(300), requestsPerSecond: 2_000, searchRequestsPerSecond: 1_000, pageSize: 100)
    }

    func sync(_ data: SimulatedDataset, client: PostgresClient) async throws {
        let state = SimulatorState(data: data, seed: 1, rateLimit: (2_000, 1_000))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = SimulatorServer(kind: .hubspot, state: state).application(logger: logger, onRunning: { continuation.yield($0) })
        try await withLocalServices([app], logger: logger) {
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let config = try connectorConfig(port: port)
            _ = try await HTTPClient.shared.withConnector(config, logger: logger, timeout: .seconds(30)) { crm in
                try await SyncEngine(config: config, connector: crm, client: client, logger: logger).run(full: false)
            }
        }
    }

    /// Won deals per campaign under `linear` (every touch in the window gets a share, and the
    /// simulator's amounts are large enough for every share to be positive), computed from the
    /// contract's tables without the attribution machinery: a won deal, a touch of the campaign by
    /// one of its contacts, from 90 days before the deal's creation up to its close.
    func expectedWonDeals(_ client: PostgresClient, touchesByEmail: Bool) async throws -> [String: Int] {
        let contactJoin = touchesByEmail
            ? "JOIN crm.contacts c ON c.connector = dc.connector AND c.external_id = dc.contact_external_id AND NOT c.deleted JOIN crm.touches t ON lower(t.email) = lower(c.email)"
            : "JOIN crm.touches t ON t.connector = dc.connector AND t.contact_external_id = dc.contact_external_id"
        let rows = try await client.query(PostgresQuery(unsafeSQL: """
            SELECT campaign, count(*)::int8 FROM (
                SELECT DISTINCT d.external_id, t.campaign
                  FROM reporting.deals d
                  JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
                  \(contactJoin)
                 WHERE d.is_won AND NOT d.deleted AND d.amount IS NOT NULL AND d.currency IS NOT NULL AND t.campaign IS NOT NULL
                   AND t.occurred_at >= d.created_at - interval '90 days'
                   AND t.occurred_at <= coalesce(d.closed_at, 'infinity')) won
             GROUP BY campaign
            """), logger: logger).collect()
        return Dictionary(uniqueKeysWithValues: try rows.map { try $0.decode((String, Int64).self) }.map { ($0.0, Int($0.1)) })
    }

    /// What an analyst reads: `SELECT campaign, won_deals FROM reporting.roi_by_campaign`.
    func viewWonDeals(_ client: PostgresClient) async throws -> [String: Int] {
        let rows = try await client.query(
            "SELECT campaign, won_deals::int8 FROM reporting.roi_by_campaign WHERE model = 'linear' AND won_deals > 0",
            logger: logger
        ).collect()
        return Dictionary(uniqueKeysWithValues: try rows.map { try $0.decode((String, Int64).self) }.map { ($0.0, Int($0.1)) })
    }

    func status(_ client: PostgresClient) async throws -> [String] {
        try await ReportReader().attributionStatus(client: client, logger: logger)
            .map { "\($0.workspace): \($0.pendingDeals) pending, refreshed \($0.refreshedAt != nil)" }
    }

    /// The view as it is, and as a full refresh would make it (in a transaction rolled back).
    func viewAndFullRefresh(_ client: PostgresClient) async throws -> (String, String) {
        try await client.withConnection { connection in
            let sql = "SELECT coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '') FROM reporting.roi_by_campaign r"
            let now = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect().first!.decode(String.self)
            try await connection.query("BEGIN", logger: logger)
            try await connection.query("SELECT crm.refresh_attribution()", logger: logger)
            let full = try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect().first!.decode(String.self)
            try await connection.query("ROLLBACK", logger: logger)
            return (now, full)
        }
    }

    /// The marketing touches arrived first (known only by e-mail); the sync brings the deals and
    /// their contacts. Straight after `sync`, the view counts the won deals.
    @Test func afterASyncTheViewShowsTheWonDealsWithoutAReport() async throws {
        try await TestDatabase.with { client, _ in
            let data = SimulatedDataset.generate(seed: 21, deals: 300, now: Date())
            for (index, event) in data.events.enumerated() where event.campaign != nil {
                try await client.query(
                    """
                    INSERT INTO crm.touches (touch_key, email, campaign, kind, occurred_at)
                    VALUES (\("sim:\(index)"), \(event.contact.email), \(event.campaign), \(event.type),
                            \(CRMTimestamp.parse(event.occurred_at)!))
                    """, logger: logger)
            }
            try await sync(data, client: client)

            let expected = try await expectedWonDeals(client, touchesByEmail: true)
            #expect(expected.values.reduce(0, +) > 10, "the fixture has won deals with touches")
            #expect(try await viewWonDeals(client) == expected)
            #expect(try await status(client) == ["default: 0 pending, refreshed true"])
            let (view, full) = try await viewAndFullRefresh(client)
            #expect(view == full, "what the sync left is what a full refresh computes")
        }
    }

    /// The deals were synced before their touches arrived as engagement events; straight after the
    /// inbox pass applies them, and after a CRM webhook deletes a won deal, the view is current.
    @Test func afterTheInboxIsAppliedTheViewShowsTheWonDealsWithoutAReport() async throws {
        try await TestDatabase.with { client, _ in
            let data = SimulatedDataset.generate(seed: 22, deals: 300, now: Date())
            try await sync(data, client: client)
            #expect(try await viewWonDeals(client) == [:], "no touches yet")

            let events = try data.events.filter { $0.campaign != nil }.map { event in
                InboxEvent(deliveryID: event.id, eventType: event.type, occurredAt: CRMTimestamp.parse(event.occurred_at)!,
                           recordKey: event.contact.external_id,
                           payload: String(decoding: try JSONEncoder().encode(event), as: UTF8.self))
            }
            try await DirectInboxWriter(client: client, logger: logger).store(source: "events", events: events)
            let outcome = try await InboxProcessor(client: client, logger: logger).drain()
            #expect(outcome.applied == events.count)

            let expected = try await expectedWonDeals(client, touchesByEmail: false)
            #expect(expected.values.reduce(0, +) > 10, "the fixture has won deals with touches")
            #expect(try await viewWonDeals(client) == expected)
            #expect(try await status(client) == ["default: 0 pending, refreshed true"])

            // A CRM webhook deletes a won deal that has credits: its figures leave the view at once.
            let won = try await client.query(
                "SELECT min(deal_external_id) FROM crm.attribution_credits WHERE model = 'linear' AND credit > 0", logger: logger
            ).collect().first!.decode(String.self)
            let change = CRMWebhookChange(object: "deal", action: .deleted, externalID: won, sourceType: "deal.deletion")
            try await DirectInboxWriter(client: client, logger: logger).store(
                source: "hs", events: [try change.inboxEvent(deliveryID: "gone-\(won)", occurredAt: Date(), raw: Data("{}".utf8))])
            #expect(try await InboxProcessor(client: client, logger: logger).drain().applied == 1)
            let fewer = try await expectedWonDeals(client, touchesByEmail: false)
            #expect(fewer.values.reduce(0, +) < expected.values.reduce(0, +))
            #expect(try await viewWonDeals(client) == fewer)
            let (view, full) = try await viewAndFullRefresh(client)
            #expect(view == full, "what the inbox pass left is what a full refresh computes")
            #expect(try await status(client) == ["default: 0 pending, refreshed true"])
        }
    }
}
