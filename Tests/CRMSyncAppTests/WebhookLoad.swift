import AsyncHTTPClient
import CRMSyncCore
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// Posts signed engagement events to a receiver over real HTTP, for the concurrency and crash
/// tests.
struct WebhookLoad {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    let port: Int
    let signer = try! StandardWebhookSigner(secret: secret)

    static func event(_ id: String, contact: Int) -> String {
        #"{"type": "email.opened", "id": "\#(id)", "occurred_at": "2026-11-02T01:23:45Z", "contact": {"email": "c\#(contact)@example.com", "external_id": "hubspot:\#(contact)"}, "campaign": "wp-2026-q4", "sequence": "whitepaper-followup", "step": 1}"#
    }

    /// One signed POST; the HTTP status, or nil when the connection failed.
    func post(_ body: String, messageID: String, client: HTTPClient) async -> Int? {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/webhooks/events")
        request.method = .POST
        let timestamp = Int64(Date().timeIntervalSince1970)
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "webhook-id", value: messageID)
        request.headers.add(name: "webhook-timestamp", value: "\(timestamp)")
        request.headers.add(name: "webhook-signature", value: signer.signature(id: messageID, timestamp: timestamp, body: Data(body.utf8)))
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await client.execute(request, timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 1 << 16)
            return Int(response.status.code)
        } catch {
            return nil
        }
    }
}

/// Mutable state shared by concurrent test tasks.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
