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

/// The receiver against requests signed by the official libraries (PyPI `standardwebhooks`,
/// `hubspot-api-client`), and the libraries against signatures crm-sync makes.
@Suite struct SignatureFidelityTests {
    func sign(_ script: String, secret: String, _ items: [[String: String]]) async throws -> [String: Any] {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("sign-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: items).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let output = try await OfficialClient.run(script, ["--secret", secret, "--input", file.path])
        #expect(output.status == 0, "\(output.stderr.suffix(2_000))")
        return try output.json()
    }

    @Test func standardWebhooksLibrarySignaturesAreAcceptedAndForgeriesRefused() async throws {
        try await TestDatabase.with { client, _ in
            let router = WebhookRouter(settings: .init(eventsSecret: Hooks.eventsSecret), client: client, logger: TestDatabase.logger).router()
            let now = Int64(Date().timeIntervalSince1970)
            let bodies = (0..<20).map { i in i % 4 == 0 ? "[\(Hooks.event("evt_\(i)a")), \(Hooks.event("evt_\(i)b", type: "meeting.booked"))]" : Hooks.event("evt_\(i)") }
            var items = bodies.enumerated().map { ["id": "msg_\($0.offset)", "timestamp": "\(now)", "body": $0.element] }
            // Signed by the library but with a timestamp 6 minutes old.
            items.append(["id": "msg_stale", "timestamp": "\(now - 360)", "body": Hooks.event("evt_stale")])
            // crm-sync's own signature, for the library to verify.
            let mine = try StandardWebhookSigner(secret: Hooks.eventsSecret).signature(id: "msg_mine", timestamp: now, body: Data(bodies[1].utf8))
            items.append(["id": "msg_mine", "timestamp": "\(now)", "body": bodies[1], "signature": mine])
            let signed = try await sign("standardwebhooks_sign.py", secret: Hooks.eventsSecret, items)
            let signatures = try #require(signed["signatures"] as? [String])
            #expect((signed["verified"] as? [Any])?.last as? Bool == true, "the library rejects crm-sync's signature")
            let wrongSecret = "whsec_" + Data(repeating: 7, count: 32).base64EncodedString()
            let forged = try #require(try await sign("standardwebhooks_sign.py", secret: wrongSecret, [items[0]])["signatures"] as? [String])

            let app = Application(router: router)
            let requests = items
            try await app.test(.router) { http in
                func post(_ index: Int, body: String? = nil, signature: String? = nil, timestamp: Int64? = nil) async throws -> HTTPResponse.Status {
                    let item = requests[index]
                    let headers = Hooks.standardHeaders(id: item["id"]!, timestamp: timestamp ?? Int64(item["timestamp"]!)!,
                                                        signature: signature ?? signatures[index])
                    return try await http.execute(uri: "/webhooks/events", method: .post, headers: headers,
                                                  body: ByteBuffer(string: body ?? item["body"]!)) { $0.status }
                }
                for index in bodies.indices { #expect(try await post(index) == .ok) }
                #expect(try await Hooks.count(client) == 25)
                // Replayed: the same requests again are accepted and change nothing.
                for index in bodies.indices.prefix(8) { #expect(try await post(index) == .ok) }
                #expect(try await Hooks.count(client) == 25)
                // Altered body, wrong secret, stale timestamp, a signature moved to another timestamp, unsigned.
                #expect(try await post(0, body: bodies[0].replacingOccurrences(of: "cases/a", with: "cases/b")) == .unauthorized)
                #expect(try await post(0, signature: forged[0]) == .unauthorized)
                #expect(try await post(bodies.count) == .unauthorized)
                #expect(try await post(1, timestamp: now + 1) == .unauthorized)
                let unsigned = try await http.execute(uri: "/webhooks/events", method: .post, headers: [.contentType: "application/json"],
                                                      body: ByteBuffer(string: Hooks.event("evt_unsigned"))) { $0.status }
                #expect(unsigned == .unauthorized)
            }
            #expect(try await Hooks.count(client) == 25)
            #expect(try await Hooks.count(client, "SELECT count(*)::int8 FROM crm.inbox WHERE delivery_id IN ('evt_stale', 'evt_unsigned')") == 0)
            let outcome = try await InboxProcessor(client: client, logger: TestDatabase.logger).drain()
            #expect(outcome == .init(applied: 25, deadLettered: 0))
            #expect(try await Hooks.count(client, "SELECT count(*)::int8 FROM crm.touches") == 25)
            #expect(try await Hooks.count(client, "SELECT count(*)::int8 FROM crm.touches WHERE kind = 'meeting.booked'") == 5)
            // Applying again is a no-op.
            #expect(try await InboxProcessor(client: client, logger: TestDatabase.logger).drain() == .init())
        }
    }

    @Test func hubspotClientSignaturesAreAcceptedAndStageChangesReachTheHistory() async throws {
        try await TestDatabase.with { client, _ in
            let router = WebhookRouter(settings: .init(eventsSecret: nil, connectors: Hooks.connectors()), client: client,
                                       logger: TestDatabase.logger).router()
            let occurred: Int64 = 1_780_000_000_123
            let body = """
                [{"eventId": 3816279340, "subscriptionId": 25, "portalId": 33, "appId": 1160452, "occurredAt": \(occurred), "subscriptionType": "deal.propertyChange", "attemptNumber": 0, "objectId": 1246965, "propertyName": "dealstage", "propertyValue": "closedwon", "changeSource": "CRM_UI", "sourceId": "userId:123"},
                 {"eventId": 3816279341, "subscriptionId": 26, "portalId": 33, "appId": 1160452, "occurredAt": \(occurred + 5), "subscriptionType": "deal.creation", "attemptNumber": 0, "objectId": 1246966, "changeFlag": "CREATED"},
                 {"eventId": 11112222333, "subscriptionId": 60, "portalId": 33, "appId": 1160452, "occurredAt": \(occurred + 9), "subscriptionType": "deal.merge", "attemptNumber": 0, "objectId": 100, "primaryObjectId": 100, "mergedObjectIds": [200, 300], "newObjectId": 100, "numberOfPropertiesMoved": 14, "changeSource": "CRM"}]
                """
            let uri = "https://hooks.example.com/webhooks/hubspot/hs"
            let nowMillis = Int64(Date().timeIntervalSince1970 * 1000)
            let mine = HubSpotSignatureV3(clientSecret: Hooks.hubspotSecret).signature(method: "POST", uri: uri, body: Data(body.utf8), timestampMillis: "\(nowMillis)")
            let signed = try await sign("hubspot_signature.py", secret: Hooks.hubspotSecret, [
                ["method": "POST", "uri": uri, "body": body, "timestamp": "\(nowMillis)", "signature": mine],
                ["method": "POST", "uri": uri, "body": body, "timestamp": "\(nowMillis - 360_000)"],
            ])
            let signatures = try #require(signed["signatures"] as? [String])
            #expect((signed["valid"] as? [Any])?.first as? Bool == true, "hubspot-api-client rejects crm-sync's v3 signature")
            let wrong = try #require(try await sign("hubspot_signature.py", secret: "another-secret", [["method": "POST", "uri": uri, "body": body, "timestamp": "\(nowMillis)"]])["signatures"] as? [String])
            try await TestDatabase.exec(client, """
                INSERT INTO crm.deals (connector, external_id, stage, modified_at) VALUES
                    ('hs', '200', 'appointmentscheduled', '2026-01-01'), ('hs', '300', 'qualifiedtobuy', '2026-01-01'),
                    ('hs', '100', 'qualifiedtobuy', '2026-01-01')
                """)

            try await Application(router: router).test(.router) { (http: any TestClientProtocol) async throws -> Void in
                func post(_ signature: String, millis: Int64, body altered: String? = nil, path: String = "/webhooks/hubspot/hs") async throws -> HTTPResponse.Status {
                    let status = try await http.execute(uri: path, method: .post, headers: [
                        HTTPField.Name("X-HubSpot-Signature-v3")!: signature, HTTPField.Name("X-HubSpot-Request-Timestamp")!: "\(millis)",
                        HTTPField.Name("Host")!: "hooks.example.com", .contentType: "application/json",
                    ], body: ByteBuffer(string: altered ?? body)) { $0.status }
                    return status
                }
                #expect(try await post(signatures[0], millis: nowMillis) == .noContent)
                #expect(try await post(signatures[0], millis: nowMillis) == .noContent) // HubSpot's retry
                #expect(try await post(signatures[1], millis: nowMillis - 360_000) == .unauthorized)
                #expect(try await post(wrong[0], millis: nowMillis) == .unauthorized)
                #expect(try await post(signatures[0], millis: nowMillis, body: body.replacingOccurrences(of: "closedwon", with: "closedlost")) == .unauthorized)
                #expect(try await post(signatures[0], millis: nowMillis, path: "/webhooks/hubspot/nobody") == .notFound)
                #expect(try await post(signatures[0], millis: nowMillis, path: "/webhooks/pipedrive/hs") == .notFound)
            }
            #expect(try await Hooks.count(client) == 3)
            let outcome = try await InboxProcessor(client: client, logger: TestDatabase.logger).drain()
            #expect(outcome == .init(applied: 3, deadLettered: 0))
            let history = try await client.query(
                "SELECT deal_external_id, stage, source, (extract(epoch FROM entered_at) * 1000)::int8 FROM crm.stage_history",
                logger: TestDatabase.logger).collect().map { try $0.decode((String, String, String, Int64).self) }
            #expect(history.count == 1)
            #expect(history.first?.0 == "1246965" && history.first?.1 == "closedwon" && history.first?.2 == "webhook")
            #expect(history.first?.3 == occurred)
            let merged = try await client.query("SELECT external_id, deleted, merged_into FROM crm.deals ORDER BY external_id",
                                                logger: TestDatabase.logger).collect().map { try $0.decode((String, Bool, String?).self) }
            #expect(merged.map(\.1) == [false, true, true])
            #expect(merged.map(\.2) == [nil, "100", "100"])
        }
    }
}

extension TestDatabase {
    static func exec(_ client: PostgresClient, _ sql: String) async throws {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
    }
}
