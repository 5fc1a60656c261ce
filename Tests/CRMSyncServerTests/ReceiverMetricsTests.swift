import CRMSyncCore
import CRMSyncServer
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

/// `/metrics` shows requests, rejects by reason, inbox lag and dead letters; and CRM events are
/// applied in occurrence order per record, so a late event never undoes a newer state.
@Suite struct ReceiverMetricsTests {
    @Test func metricsExposeRequestsRejectsByReasonInboxLagAndDeadLetters() async throws {
        MetricsRegistry.bootstrap()
        try await TestDatabase.with { client, _ in
            let router = WebhookRouter(settings: .init(eventsSecret: Hooks.eventsSecret, connectors: Hooks.connectors()), client: client,
                                       logger: TestDatabase.logger).router()
            try await Application(router: router).test(.router) { (http: any TestClientProtocol) async throws -> Void in
                let good = Hooks.event("metrics_1", contact: "nowhere:1").replacingOccurrences(of: #""email": "ken@example.co.jp", "#, with: "")
                _ = try await http.execute(uri: "/webhooks/events", method: .post, headers: Hooks.signed(id: "m1", body: good), body: ByteBuffer(string: good)) { $0.status }
                _ = try await http.execute(uri: "/webhooks/events", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: good)) { $0.status }
                _ = try await http.execute(uri: "/webhooks/hubspot/nobody", method: .post, body: ByteBuffer(string: "[]")) { $0.status }
                let pending = try await http.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
                #expect(pending.contains("crm_sync_inbox_pending 1"), "\(pending)")
                #expect(pending.contains("crm_sync_inbox_lag_seconds"))
                #expect(try await InboxProcessor(client: client, logger: TestDatabase.logger).drain() == .init(applied: 0, deadLettered: 1))
                let text = try await http.execute(uri: "/metrics", method: .get) { String(buffer: $0.body) }
                #expect(text.contains(#"crm_sync_webhook_rejects_total{endpoint="events",reason="signature"}"#), "\(text)")
                #expect(text.contains(#"crm_sync_webhook_rejects_total{endpoint="hubspot",reason="unknown_connector"}"#))
                #expect(text.contains(#"crm_sync_webhook_events_total{endpoint="events"}"#))
                #expect(text.contains("crm_sync_inbox_pending 0"))
                #expect(text.contains("crm_sync_dead_letters 1"))
                #expect(text.contains("hb_requests"))
                #expect(!text.contains("metrics_1"), "an event id leaked into the metrics")
            }
        }
    }

    @Test func aLateDeletionDoesNotUndoANewerStateButATimelyOneTombstones() async throws {
        try await TestDatabase.with { client, _ in
            try await TestDatabase.exec(client, """
                INSERT INTO crm.deals (connector, external_id, stage, modified_at) VALUES
                    ('hs', '1', 'closedwon', '2026-06-01T00:00:00Z'), ('hs', '2', 'closedwon', '2026-06-01T00:00:00Z')
                """)
            let router = WebhookRouter(settings: .init(eventsSecret: nil, connectors: Hooks.connectors()), client: client, logger: TestDatabase.logger).router()
            let before = Int64(CRMTimestamp.parse("2026-05-01T00:00:00Z")!.timeIntervalSince1970 * 1000)
            let after = Int64(CRMTimestamp.parse("2026-07-01T00:00:00Z")!.timeIntervalSince1970 * 1000)
            // Deal 1: a stage change and then its deletion, delivered in reverse order in one request.
            let body = """
                [{"eventId": 3, "subscriptionId": 9, "occurredAt": \(after + 10), "subscriptionType": "deal.deletion", "objectId": 1},
                 {"eventId": 2, "subscriptionId": 9, "occurredAt": \(after), "subscriptionType": "deal.propertyChange", "objectId": 1, "propertyName": "dealstage", "propertyValue": "contractsent"},
                 {"eventId": 1, "subscriptionId": 9, "occurredAt": \(before), "subscriptionType": "deal.deletion", "objectId": 2},
                 {"eventId": 4, "subscriptionId": 9, "occurredAt": \(after), "subscriptionType": "ticket.creation", "objectId": 7}]
                """
            try await Application(router: router).test(.router) { (http: any TestClientProtocol) async throws -> Void in
                let status = try await http.execute(uri: "/webhooks/hubspot/hs", method: .post, headers: Hooks.hubspotHeaders(uri: "/webhooks/hubspot/hs", body: body),
                                                    body: ByteBuffer(string: body)) { $0.status }
                #expect(status == .noContent)
            }
            // The unsupported ticket event is kept as a dead letter, not dropped.
            #expect(try await InboxProcessor(client: client, logger: TestDatabase.logger).drain() == .init(applied: 3, deadLettered: 1))
            let deals = try await client.query("SELECT external_id, deleted, stage FROM crm.deals ORDER BY external_id", logger: TestDatabase.logger)
                .collect().map { try $0.decode((String, Bool, String?).self) }
            #expect(deals.map(\.1) == [true, false], "deal 1 deleted after its stage change; deal 2's deletion is older than its state")
            #expect(deals.first?.2 == "contractsent")
            let reason = try await client.query("SELECT reason FROM crm.dead_letters", logger: TestDatabase.logger).collect().first?.decode(String.self)
            #expect(reason?.contains("ticket.creation") == true)
        }
    }
}
