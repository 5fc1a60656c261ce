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

@Suite struct EventsEndpointTests {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    let signer = try! StandardWebhookSigner(secret: secret)

    func event(_ id: String, type: String = "email.clicked") -> String {
        #"{"type": "\#(type)", "id": "\#(id)", "occurred_at": "2026-11-02T01:23:45Z", "contact": {"email": "ken@example.co.jp", "external_id": "hubspot:1501"}, "campaign": "wp-2026-q4", "sequence": "whitepaper-followup", "step": 2, "url": "https://example.com/cases/a"}"#
    }

    func headers(id: String, body: String, at: Date = Date(), secretSigner: StandardWebhookSigner? = nil) -> HTTPFields {
        let timestamp = Int64(at.timeIntervalSince1970)
        let signature = (secretSigner ?? signer).signature(id: id, timestamp: timestamp, body: Data(body.utf8))
        return [
            HTTPField.Name("webhook-id")!: id, HTTPField.Name("webhook-timestamp")!: "\(timestamp)",
            HTTPField.Name("webhook-signature")!: signature, .contentType: "application/json",
        ]
    }

    func count(_ client: PostgresClient) async throws -> Int64 {
        try await client.query("SELECT count(*)::int8 FROM crm.inbox", logger: TestDatabase.logger).collect().first!.decode(Int64.self)
    }

    @Test func signedEventsAreCommittedOnceAndBadRequestsAreRefused() async throws {
        try await TestDatabase.with { client, _ in
            let router = WebhookRouter(settings: .init(eventsSecret: Self.secret, maxBodyBytes: 64 * 1024), client: client, logger: TestDatabase.logger).router()
            let app = Application(router: router)
            try await app.test(.router) { http in
                let body = "[\(event("evt_1")), \(event("evt_2", type: "form.submitted"))]"
                try await http.execute(uri: "/webhooks/events", method: .post, headers: headers(id: "msg_1", body: body), body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .ok)
                }
                #expect(try await count(client) == 2)
                // Redelivery: same events, new message id → still two rows.
                try await http.execute(uri: "/webhooks/events", method: .post, headers: headers(id: "msg_2", body: body), body: ByteBuffer(string: body)) { response in
                    #expect(response.status == .ok)
                }
                #expect(try await count(client) == 2)

                let one = event("evt_3")
                // Altered body.
                try await http.execute(uri: "/webhooks/events", method: .post, headers: headers(id: "msg_3", body: one),
                                       body: ByteBuffer(string: one.replacingOccurrences(of: "cases/a", with: "cases/b"))) { response in
                    #expect(response.status == .unauthorized)
                }
                // Wrong secret.
                let other = try StandardWebhookSigner(secret: "whsec_" + Data(repeating: 1, count: 24).base64EncodedString())
                try await http.execute(uri: "/webhooks/events", method: .post, headers: headers(id: "msg_4", body: one, secretSigner: other), body: ByteBuffer(string: one)) { response in
                    #expect(response.status == .unauthorized)
                }
                // Stale timestamp.
                try await http.execute(uri: "/webhooks/events", method: .post, headers: headers(id: "msg_5", body: one, at: Date().addingTimeInterval(-600)), body: ByteBuffer(string: one)) { response in
                    #expect(response.status == .unauthorized)
                }
                // Unsigned.
                try await http.execute(uri: "/webhooks/events", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: one)) { response in
                    #expect(response.status == .unauthorized)
                }
                #expect(try await count(client) == 2)
                // Signed but malformed.
                let bad = #"{"type": "email.teleported", "id": "x"}"#
                try await http.execute(uri: "/webhooks/events", method: .post, headers: headers(id: "msg_6", body: bad), body: ByteBuffer(string: bad)) { response in
                    #expect(response.status == .badRequest)
                }
                // Over the size limit.
                let huge = String(repeating: " ", count: 70 * 1024) + one
                try await http.execute(uri: "/webhooks/events", method: .post, headers: headers(id: "msg_7", body: huge), body: ByteBuffer(string: huge)) { response in
                    #expect(response.status == .contentTooLarge)
                }
                #expect(try await count(client) == 2)
                // Still serving.
                try await http.execute(uri: "/healthz", method: .get) { response in #expect(response.status == .ok) }
            }
            let applied = try await EventInbox().applyEngagementEvents(client: client, logger: TestDatabase.logger)
            #expect(applied == 2)
            let touches = try await client.query("SELECT kind, campaign, step FROM crm.touches ORDER BY kind", logger: TestDatabase.logger).collect()
            #expect(try touches.map { try $0.decode((String, String, Int?).self) }.map(\.0) == ["email.clicked", "form.submitted"])
        }
    }
}
