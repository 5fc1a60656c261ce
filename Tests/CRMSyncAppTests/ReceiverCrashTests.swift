import AsyncHTTPClient
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Synchronization
import Testing

/// `crm-sync serve` killed with SIGKILL in the middle of a burst: every event it answered 2xx
/// for is in the database afterwards.
@Suite struct ReceiverCrashTests {
    /// A port nothing listens on right now (bind to 0, read it, close).
    static func freePort() throws -> Int {
        let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(socket, pointer, length) == 0 && getsockname(socket, pointer, &length) == 0
            }
        }
        guard bound else { throw CancellationError() }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    @Test(.timeLimit(.minutes(10)))
    func everyAcknowledgedEventSurvivesSIGKILLDuringABurst() async throws {
        try await TestDatabase.with { client, url in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let config = folder.appendingPathComponent("crm-sync.yaml").path
            try "events:\n  secret_env: EVENTS_WEBHOOK_SECRET\n".write(toFile: config, atomically: true, encoding: .utf8)
            let port = try Self.freePort()
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
            process.arguments = ["serve", "--config", config, "--port", "\(port)"]
            var environment = ProcessInfo.processInfo.environment
            environment["DATABASE_URL"] = TestDatabase.text(url)
            environment["EVENTS_WEBHOOK_SECRET"] = WebhookLoad.secret
            process.environment = environment
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

            let http = HTTPClient.shared
            // A loaded machine can take a while to start it; the bound only keeps a broken start from hanging the run.
            let ready = try await eventually {
                let response = try? await http.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz"), timeout: .seconds(5))
                return response?.status == .ok
            }
            try #require(ready, "crm-sync serve did not come up")

            let load = WebhookLoad(port: port)
            let acknowledged = Locked<[String]>([])
            let failed = Locked(0)
            let refusals = Locked<[Int: Int]>([:])
            let next = Locked(0)
            let killed = Locked(false)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        // After the kill, only requests already in flight finish (a new one would wait
                        // for its connect deadline against a dead port).
                        while !killed.withLock({ $0 }), !Task.isCancelled {
                            let n = next.withLock { value in defer { value += 1 }; return value }
                            // Half the requests carry 5 events, so some kills land inside multi-event commits.
                            let ids = n % 2 == 0 ? ["k\(n)"] : (0..<5).map { "k\(n)_\($0)" }
                            let body = ids.count == 1 ? WebhookLoad.event(ids[0], contact: n) : "[" + ids.map { WebhookLoad.event($0, contact: n) }.joined(separator: ",") + "]"
                            let status = await load.post(body, messageID: "m\(n)", client: http)
                            if status == 200 {
                                acknowledged.withLock { $0 += ids }
                            } else {
                                refusals.withLock { $0[status ?? -1, default: 0] += 1 }
                                if failed.withLock({ $0 += 1; return $0 }) > 50 { return }
                                try await Task.sleep(for: .milliseconds(10))
                            }
                        }
                    }
                }
                // Let the burst run, then kill the receiver mid-flight.
                let started = ContinuousClock.now
                while acknowledged.withLock({ $0.count }) < 1_500, failed.withLock({ $0 }) < 50, ContinuousClock.now - started < .seconds(60) {
                    try await Task.sleep(for: .milliseconds(5))
                }
                killed.withLock { $0 = true }
                kill(process.processIdentifier, SIGKILL)
                try await group.waitForAll()
            }
            // Polled: waitUntilExit needs a run loop the cooperative pool does not turn.
            while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
            #expect(process.terminationReason == .uncaughtSignal && process.terminationStatus == SIGKILL)
            let acked = acknowledged.withLock { $0 }
            #expect(acked.count >= 1_500, "refused before the kill: \(refusals.withLock { $0 })")
            let stored = Set(try await client.query("SELECT delivery_id FROM crm.inbox WHERE source = 'events'", logger: TestDatabase.logger)
                .collect().map { try $0.decode(String.self) })
            let missing = acked.filter { !stored.contains($0) }
            #expect(missing.isEmpty, "\(missing.count) acknowledged events are not in crm.inbox, e.g. \(missing.prefix(5))")
        }
    }
}
