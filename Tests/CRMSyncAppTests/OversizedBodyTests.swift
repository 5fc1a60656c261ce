import CRMSyncServer
import CRMSyncTestSupport
import Foundation
import Testing

/// A body over the limit, from a client that sends all of it before reading the answer
/// (Python's urllib): it gets the 413, not a reset connection, and the receiver goes on serving.
@Suite struct OversizedBodyTests {
    @Test func urllibGetsThe413ForABodyOverTheLimit() async throws {
        try await TestDatabase.with { client, _ in
            try await ConcurrentDeliveryTests.withReceiver(client: client) { port in
                let url = "http://127.0.0.1:\(port)/webhooks/events"
                // 8 MiB: over the 1 MiB limit, within the 16 MiB the receiver reads and discards, and
                // more than the socket buffers hold (so a receiver that stopped reading resets it).
                let over = try await OfficialClient.run("oversized_post.py", [url, "\(8 << 20)"]).json()
                #expect(over["status"] as? Int == 413, "\(over)")
                #expect((over["body"] as? String)?.contains("body over 1048576 bytes") == true, "\(over)")
                #expect((over["connection"] as? String)?.lowercased() == "close", "\(over)")
                // Beyond 16 MiB the connection is closed on the sender; either way nothing is stored.
                let huge = try await OfficialClient.run("oversized_post.py", [url, "\(24 << 20)"]).json()
                #expect(huge["status"] as? Int == 413 || huge["error"] != nil, "\(huge)")
                // Still serving: a signed event of normal size is accepted.
                let status = await WebhookLoad(port: port).post(WebhookLoad.event("after-413", contact: 1), messageID: "m-after", client: .shared)
                #expect(status == 200)
            }
            let stored = try await client.query("SELECT count(*)::int8 FROM crm.inbox", logger: TestDatabase.logger).collect().first!.decode(Int64.self)
            #expect(stored == 1, "only the normal event was stored")
        }
    }
}
