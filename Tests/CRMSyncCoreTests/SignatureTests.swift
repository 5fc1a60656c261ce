import CRMSyncCore
import Foundation
import Testing

/// Vectors from shared/test-vectors/signatures.json (Standard Webhooks' own test vector, and one
/// computed with hubspot-api-client 12.0.0).
@Suite struct SignatureTests {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    let body = Data(#"{"test": 2432232314}"#.utf8)
    let expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    let at = Date(timeIntervalSince1970: 1_614_265_330)

    @Test func standardWebhooksVectorSigns() throws {
        #expect(try StandardWebhookSigner(secret: secret).signature(id: id, timestamp: 1_614_265_330, body: body) == expected)
    }

    @Test func standardWebhooksAcceptsAnyOfSeveralSignatures() throws {
        let signer = try StandardWebhookSigner(secret: secret)
        try signer.verify(id: id, timestamp: "1614265330", signatures: "v1,AAAA \(expected)", body: body, now: at)
    }

    @Test func standardWebhooksRefusesAlteredBodyWrongSecretAndStaleTime() throws {
        let signer = try StandardWebhookSigner(secret: secret)
        #expect(throws: SignatureError.mismatch) {
            try signer.verify(id: id, timestamp: "1614265330", signatures: expected, body: Data(#"{"test": 2432232315}"#.utf8), now: at)
        }
        let other = try StandardWebhookSigner(secret: "whsec_" + Data(repeating: 7, count: 24).base64EncodedString())
        #expect(throws: SignatureError.mismatch) {
            try other.verify(id: id, timestamp: "1614265330", signatures: expected, body: body, now: at)
        }
        #expect(throws: SignatureError.staleTimestamp) {
            try signer.verify(id: id, timestamp: "1614265330", signatures: expected, body: body, now: at.addingTimeInterval(301))
        }
        #expect(throws: SignatureError.missingHeader("webhook-signature")) {
            try signer.verify(id: id, timestamp: "1614265330", signatures: nil, body: body, now: at)
        }
    }

    @Test func hubSpotV3Vector() throws {
        let body = #"[{"eventId":3816279340,"subscriptionId":25,"portalId":33,"appId":1160452,"occurredAt":1718003523114,"subscriptionType":"deal.propertyChange","attemptNumber":0,"objectId":18270311,"propertyName":"dealstage","propertyValue":"closedwon","changeSource":"CRM_UI"}]"#
        let signer = HubSpotSignatureV3(clientSecret: "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy")
        let uri = "https://crm-sync.example.com/webhooks/hubspot/hubspot-main"
        let signature = signer.signature(method: "POST", uri: uri, body: Data(body.utf8), timestampMillis: "1718003523500")
        #expect(signature == "cmsoIPcKmDc3Uf0dXLMWRrw4zgJFwKi3whWc/E1HMas=")
        let now = Date(timeIntervalSince1970: 1_718_003_523.5 + 60)
        try signer.verify(method: "POST", uri: uri, body: Data(body.utf8), signature: signature, timestampMillis: "1718003523500", now: now)
        #expect(throws: SignatureError.staleTimestamp) {
            try signer.verify(method: "POST", uri: uri, body: Data(body.utf8), signature: signature, timestampMillis: "1718003523500",
                              now: now.addingTimeInterval(300))
        }
    }

    @Test func constantTimeComparisonStillCompares() {
        #expect(constantTimeEquals(Array("abc".utf8), Array("abc".utf8)))
        #expect(!constantTimeEquals(Array("abc".utf8), Array("abd".utf8)))
        #expect(!constantTimeEquals(Array("abc".utf8), Array("abcd".utf8)))
    }
}
