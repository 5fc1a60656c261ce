import CRMSyncCore
import CRMSyncServer
import CRMSyncTestSupport
import Foundation
import HTTPTypes
import PostgresNIO

/// Bodies, headers and counts the webhook tests share.
enum Hooks {
    static let eventsSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    static let hubspotSecret = "hubspot-client-secret-0123"
    static let pipedriveCredentials = "crm-sync:pipedrive-pass"
    static let salesforceOrganization = "00D7F00000107XsUAI"

    static func event(_ id: String, type: String = "email.clicked", contact: String = "hubspot:1501",
                      at: String = "2026-11-02T01:23:45Z") -> String {
        #"{"type": "\#(type)", "id": "\#(id)", "occurred_at": "\#(at)", "contact": {"email": "ken@example.co.jp", "external_id": "\#(contact)"}, "campaign": "wp-2026-q4", "sequence": "whitepaper-followup", "step": 2, "url": "https://example.com/cases/a"}"#
    }

    static func standardHeaders(id: String, timestamp: Int64, signature: String) -> HTTPFields {
        [
            HTTPField.Name("webhook-id")!: id, HTTPField.Name("webhook-timestamp")!: "\(timestamp)",
            HTTPField.Name("webhook-signature")!: signature, .contentType: "application/json",
        ]
    }

    static func signed(id: String, body: String, at: Date = Date(), secret: String = eventsSecret) -> HTTPFields {
        let timestamp = Int64(at.timeIntervalSince1970)
        let signature = try! StandardWebhookSigner(secret: secret).signature(id: id, timestamp: timestamp, body: Data(body.utf8))
        return standardHeaders(id: id, timestamp: timestamp, signature: signature)
    }

    static func hubspotHeaders(uri: String, body: String, at: Date = Date(), secret: String = hubspotSecret,
                               host: String = "hooks.example.com") -> HTTPFields {
        let millis = "\(Int64(at.timeIntervalSince1970 * 1000))"
        let signature = HubSpotSignatureV3(clientSecret: secret).signature(method: "POST", uri: "https://\(host)\(uri)",
                                                                          body: Data(body.utf8), timestampMillis: millis)
        return [
            HTTPField.Name("X-HubSpot-Signature-v3")!: signature, HTTPField.Name("X-HubSpot-Request-Timestamp")!: millis,
            HTTPField.Name("Host")!: host, .contentType: "application/json",
        ]
    }

    static func connectors() -> [WebhookConnector] {
        [
            WebhookConnector(name: "hs", kind: .hubspot, secret: hubspotSecret),
            WebhookConnector(name: "pd", kind: .pipedrive, secret: pipedriveCredentials),
            WebhookConnector(name: "sf", kind: .salesforce, secret: nil, organizationID: salesforceOrganization),
        ]
    }

    static func count(_ client: PostgresClient, _ sql: String = "SELECT count(*)::int8 FROM crm.inbox") async throws -> Int64 {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: TestDatabase.logger).collect().first!.decode(Int64.self)
    }

    /// Deterministic pseudo-random numbers (SplitMix64), so a failing fuzz case can be replayed.
    struct Random: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }
}
