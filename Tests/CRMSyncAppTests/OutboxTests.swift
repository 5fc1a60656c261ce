import AsyncHTTPClient
import CRMSyncApp
import CRMSyncConfig
import CRMSyncConnectors
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import Testing

@testable import CRMSimulator

/// A clock the test moves by hand: days of backoff pass in a moment.
final class FakeClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date
    private var shown: [Date]
    init(_ start: Date) {
        current = start
        shown = [start]
    }
    var now: Date { lock.withLock { current } }
    /// Every time the clock has shown, oldest first.
    var history: [Date] { lock.withLock { shown } }
    func advance(by seconds: TimeInterval) { set(now.addingTimeInterval(seconds)) }
    func set(_ date: Date) {
        lock.withLock {
            current = date
            shown.append(date)
        }
    }
    var function: @Sendable () -> Date { { self.now } }
}

/// The MA tool's endpoint, badly behaved on purpose. Every request's signature is verified with the
/// outbound secret; a command's "effect" happens once per `webhook-id` (the receiver dedupes on
/// it, as the contract asks), and every request that reached processing is logged.
actor FlakyReceiver {
    enum Mode: Sendable, Equatable {
        case ok
        /// 503 without doing anything.
        case unavailable
        /// Does the work, then answers 500: the acknowledgement is lost.
        case lostAck
        /// Sleeps past the client's timeout, then does the work and answers 200 to nobody.
        case slow
        /// 429 with `Retry-After: 3600`.
        case tooMany
    }

    struct Logged: Sendable, Equatable {
        var webhookID: String
        var idempotencyKey: String?
        var bodyID: String?
        var contact: String?
    }

    let signer: StandardWebhookSigner
    let clock: FakeClock
    /// What the n-th request for a webhook-id meets (then `.ok` once the plan runs out).
    var plan: @Sendable (String, Int) -> Mode
    private(set) var requests: [String: Int] = [:]
    private(set) var logged: [Logged] = []
    /// Effects in the order they happened, one per webhook-id.
    private(set) var effects: [Logged] = []
    private(set) var badSignatures = 0
    /// The signed headers and raw body of every verified request, for checks by other verifiers.
    private(set) var signed: [(id: String, timestamp: String, signature: String, body: Data)] = []
    /// Requests for one webhook-id that were in flight at the same time.
    private(set) var overlaps = 0
    private var inFlight: Set<String> = []
    let slowFor: Duration

    init(secret: String, clock: FakeClock, slowFor: Duration = .milliseconds(1500), plan: @escaping @Sendable (String, Int) -> Mode) throws {
        signer = try StandardWebhookSigner(secret: secret)
        self.clock = clock
        self.plan = plan
        self.slowFor = slowFor
    }

    func setPlan(_ plan: @escaping @Sendable (String, Int) -> Mode) { self.plan = plan }

    /// Verifies, counts, and says what to do with this request.
    func admit(_ request: Request, body: Data) -> (Mode, Logged)? {
        let id = request.headers[HTTPField.Name("webhook-id")!]
        // The fake clock jumps hours between passes while real requests may still be on the wire
        // (a loaded machine delivers one after the jump): freshness is judged against every time
        // the clock has shown, so only a wrong or truly stale signature counts as bad.
        let verified = clock.history.reversed().contains { now in
            (try? signer.verify(id: id, timestamp: request.headers[HTTPField.Name("webhook-timestamp")!],
                                signatures: request.headers[HTTPField.Name("webhook-signature")!], body: body, now: now)) != nil
        }
        guard verified else {
            badSignatures += 1
            return nil
        }
        signed.append((id!, request.headers[HTTPField.Name("webhook-timestamp")!]!, request.headers[HTTPField.Name("webhook-signature")!]!, body))
        let json = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        let entry = Logged(webhookID: id!, idempotencyKey: request.headers[HTTPField.Name("Idempotency-Key")!],
                           bodyID: json?["id"] as? String, contact: (json?["contact"] as? [String: Any])?["external_id"] as? String)
        requests[id!, default: 0] += 1
        busy += 1
        if !inFlight.insert(id!).inserted { overlaps += 1 }
        return (plan(id!, requests[id!]!), entry)
    }

    func leave(_ id: String) { inFlight.remove(id) }

    /// Requests admitted whose handler has not finished yet (slow ones outlive the client's timeout).
    private(set) var busy = 0

    func finish() { busy -= 1 }

    /// Waits, on a generous deadline, until every admitted request's handler has finished.
    func settle() async throws {
        let settled = try await eventually { busy == 0 }
        if !settled { Issue.record("\(busy) receiver handlers were still running after 120 s") }
    }

    nonisolated func respond(to mode: Mode, entry: Logged) async -> Response {
        // Held a moment, so that a second delivery of the same command would overlap it.
        try? await Task.sleep(for: .milliseconds(20))
        await leave(entry.webhookID)
        switch mode {
        case .unavailable:
            return Response(status: .serviceUnavailable)
        case .tooMany:
            return Response(status: .tooManyRequests, headers: [HTTPField.Name("Retry-After")!: "3600"])
        case .lostAck:
            await process(entry)
            return Response(status: .internalServerError)
        case .slow:
            try? await Task.sleep(for: slowFor)
            await process(entry)
            return Response(status: .ok)
        case .ok:
            await process(entry)
            return Response(status: .noContent)
        }
    }

    func process(_ entry: Logged) {
        logged.append(entry)
        if !effects.contains(where: { $0.webhookID == entry.webhookID }) { effects.append(entry) }
    }

    nonisolated func application(onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.post("/ma") { request, _ -> Response in
            let buffer = try await request.body.collect(upTo: 1 << 20)
            guard let admitted = await self.admit(request, body: Data(buffer: buffer)) else {
                return Response(status: .unauthorized)
            }
            let response = await self.respond(to: admitted.0, entry: admitted.1)
            await self.finish()
            return response
        }
        return Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                           onServerRunning: { await onRunning($0.localAddress?.port ?? 0) }, logger: TestDatabase.logger)
    }
}

@Suite struct OutboxTests {
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    let logger = TestDatabase.logger

    static func withServer<T: Sendable>(_ app: some ApplicationProtocol, ports: AsyncStream<Int>, _ body: @Sendable (Int) async throws -> T) async throws -> T {
        try await withLocalServices([app], logger: TestDatabase.logger) {
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            return try await body(port)
        }
    }

    static func withReceiver<T: Sendable>(_ receiver: FlakyReceiver, _ body: @Sendable (String) async throws -> T) async throws -> T {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        return try await withServer(receiver.application { continuation.yield($0) }, ports: ports) { port in
            try await body("http://127.0.0.1:\(port)/ma")
        }
    }

    /// The command line, run without blocking the cooperative threads the in-process receiver needs.
    static func cli(_ arguments: [String], environment: [String: String]) async throws -> ChildProcess.Result {
        try await ChildProcess.run(CommandLineTests.binary, arguments, environment: environment, directory: TestDatabase.packageRoot)
    }

    /// Inserts a command the way the nurture engine does.
    static func enqueue(_ client: PostgresClient, id: String, destination: String = "ma", type: String = "send_step",
                        payload: [String: Any], createdAt: Date) async throws {
        let json = String(decoding: try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys]), as: UTF8.self)
        try await client.query(
            """
            INSERT INTO crm.outbox (id, destination, command_type, payload, created_at, next_attempt_at)
            VALUES (\(id), \(destination), \(type), \(json)::jsonb, \(createdAt), \(createdAt))
            """, logger: TestDatabase.logger)
    }

    /// `timeout` is generous by default, so a loaded machine never turns a quick answer into a
    /// timeout; the flaky-receiver test shortens it to provoke timeouts on purpose.
    func dispatcher(_ client: PostgresClient, url: String, clock: FakeClock, maxAttempts: Int = 8, worker: String = "w1",
                    timeout: Duration = .seconds(5)) throws -> OutboxDispatcher {
        let policy = OutboxPolicy(maxAttempts: maxAttempts, baseDelay: .seconds(30), maxDelay: .seconds(3600),
                                  claimLease: .seconds(60), batchSize: 10, concurrency: 6, requestTimeout: timeout)
        let ma = try MAWebhookTarget(url: url, secret: Self.secret, http: .shared, timeout: policy.requestTimeout)
        return OutboxDispatcher(store: OutboxStore(client: client, logger: logger, worker: worker),
                                target: OutboxRouter(ma: ma, connectors: [:]), policy: policy, clock: clock.function, logger: logger)
    }

    func rows(_ client: PostgresClient) async throws -> [(id: String, attempts: Int32, delivered: Bool, dead: Bool, error: String?)] {
        try await client.query(
            "SELECT id, attempts, delivered_at IS NOT NULL, dead_at IS NOT NULL, last_error FROM crm.outbox ORDER BY id", logger: logger
        ).collect().map { row in
            let (id, attempts, delivered, dead, error) = try row.decode((String, Int32, Bool, Bool, String?).self)
            return (id, attempts, delivered, dead, error)
        }
    }

    /// Must-show 4: 5xx, timeouts and lost acknowledgements; every command takes effect exactly
    /// once, under one key (its id), in per-contact order, and none is dead-lettered.
    @Test func everyCommandTakesEffectExactlyOnceUnderAFlakyReceiver() async throws {
        let clock = FakeClock(Date())
        let modes: [FlakyReceiver.Mode] = [.unavailable, .slow, .lostAck]
        // Command k fails its first k % 4 requests, in varying ways; the rest succeed.
        // Slow answers come well after the client's timeout even on a loaded machine.
        let receiver = try FlakyReceiver(secret: Self.secret, clock: clock, slowFor: .seconds(5)) { id, n in
            let k = Int(id.split(separator: "_").last!)!
            return n <= k % 4 ? modes[(k + n) % modes.count] : .ok
        }
        try await TestDatabase.with { client, _ in
            let start = clock.now
            var ids: [String] = []
            for k in 0..<30 {
                let id = "cmd_\(k)"
                ids.append(id)
                // Six contacts, five commands each, plus the order they were decided in.
                var payload: [String: Any] = ["sequence": "whitepaper-followup", "step": k / 6 + 1, "reason": NSNull()]
                if k % 10 != 9 { payload["contact"] = ["email": "c\(k % 6)@example.co.jp", "external_id": "hubspot:\(1500 + k % 6)"] }
                try await Self.enqueue(client, id: id, type: ["send_step", "pause", "resume", "exit", "handoff"][k % 5], payload: payload,
                                       createdAt: start.addingTimeInterval(Double(k)))
            }
            try await Self.withReceiver(receiver) { url in
                // A retry budget for a slow machine: a timeout there can add failures to the planned ones.
                let dispatcher = try dispatcher(client, url: url, clock: clock, maxAttempts: 30, timeout: .seconds(2))
                var passes = 0, retried = 0
                while try await dispatcher.store.backlog().pending > 0, passes < 100 {
                    let summary = try await dispatcher.pass()
                    retried += summary.retried
                    #expect(summary.dead == 0)
                    passes += 1
                    clock.advance(by: 7200)   // past the longest backoff
                }
                // Let the slow handlers finish before reading the log.
                try await receiver.settle()
                #expect(retried > 20, "the receiver should have failed many requests (\(retried) retries)")
            }
            let state = try await rows(client)
            #expect(state.allSatisfy { $0.delivered && !$0.dead }, "\(state.filter { !$0.delivered })")
            #expect(await receiver.badSignatures == 0)
            let logged = await receiver.logged
            let effects = await receiver.effects
            // The set of distinct effects is the set of commands, one each.
            #expect(effects.map(\.webhookID).sorted() == ids.sorted())
            #expect(Set(effects.map(\.webhookID)).count == effects.count)
            // Every request that got through carried the command's id as webhook-id, Idempotency-Key
            // and body id: duplicates only ever carry the same key.
            #expect(logged.allSatisfy { $0.webhookID == $0.idempotencyKey && $0.webhookID == $0.bodyID })
            #expect(logged.count > effects.count, "some commands should have been processed more than once (lost acks)")
            for (contact, group) in Dictionary(grouping: effects.filter { $0.contact != nil }, by: { $0.contact! }) {
                let order = group.map { Int($0.webhookID.split(separator: "_").last!)! }
                #expect(order == order.sorted(), "contact \(contact) got its commands out of order: \(order)")
            }
        }
    }

    /// Two replicas deliver the same outbox at once: no command is sent by both, so each command
    /// reaches the receiver exactly as often as its failures plus one, never twice at a time.
    @Test func twoDispatchersNeverSendTheSameCommand() async throws {
        let clock = FakeClock(Date())
        let receiver = try FlakyReceiver(secret: Self.secret, clock: clock) { id, n in
            let k = Int(id.split(separator: "_").last!)!
            return n <= k % 3 ? (n % 2 == 0 ? .lostAck : .unavailable) : .ok
        }
        try await TestDatabase.with { client, _ in
            let start = clock.now.addingTimeInterval(-100)
            for k in 0..<40 {
                try await Self.enqueue(client, id: "cmd_\(k)", payload: ["contact": ["external_id": "hubspot:\(k % 8)"], "step": k / 8],
                                       createdAt: start.addingTimeInterval(Double(k)))
            }
            try await Self.withReceiver(receiver) { url in
                let one = try dispatcher(client, url: url, clock: clock, worker: "w1")
                let two = try dispatcher(client, url: url, clock: clock, worker: "w2")
                var byOne = OutboxPassSummary(), byTwo = OutboxPassSummary()
                for _ in 0..<30 where try await one.store.backlog().pending > 0 {
                    async let a = one.pass()
                    async let b = two.pass()
                    let (first, second) = try await (a, b)
                    byOne = byOne + first
                    byTwo = byTwo + second
                    clock.advance(by: 7200)
                }
                // Which replica wins each claim is the scheduler's business (on a loaded machine one can
                // win them all); what must hold is that no command is sent by both.
                #expect(byOne.delivered + byTwo.delivered == 40)
            }
            #expect(try await rows(client).allSatisfy { $0.delivered })
            #expect(await receiver.overlaps == 0)
            let requests = await receiver.requests
            for k in 0..<40 { #expect(requests["cmd_\(k)"] == k % 3 + 1, "cmd_\(k)") }
            #expect(Set(await receiver.effects.map(\.webhookID)).count == 40)
        }
    }

    /// The official Standard Webhooks library (Python, pinned in scripts/fidelity) accepts what
    /// the dispatcher sends, as the MA tool's own verifier would.
    @Test func theOfficialLibraryVerifiesOutboundSignatures() async throws {
        guard let python = ProcessInfo.processInfo.environment["CRM_SYNC_PYTHON"], !python.isEmpty else {
            throw SalesforceFidelityTests.PythonMissing()
        }
        let clock = FakeClock(Date())
        let receiver = try FlakyReceiver(secret: Self.secret, clock: clock) { _, _ in .ok }
        try await TestDatabase.with { client, _ in
            try await Self.enqueue(client, id: "cmd_日本", payload: ["contact": ["email": "ken@example.co.jp", "external_id": "hubspot:1501"],
                                                                 "sequence": "whitepaper-followup", "step": 2, "reason": "件名"],
                                   createdAt: clock.now.addingTimeInterval(-1))
            try await Self.withReceiver(receiver) { url in
                let summary = try await dispatcher(client, url: url, clock: clock).pass()
                #expect(summary == .init(delivered: 1))
            }
        }
        let signed = await receiver.signed
        try #require(signed.count == 1)
        let items = signed.map { ["id": $0.id, "timestamp": $0.timestamp, "signature": $0.signature, "body": String(decoding: $0.body, as: UTF8.self)] }
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-sign-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: items).write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let result = try await ChildProcess.run(python, ["\(TestDatabase.packageRoot)/scripts/fidelity/standardwebhooks_sign.py",
                                                         "--secret", Self.secret, "--input", input.path])
        #expect(result.status == 0, "\(result.stderr)")
        let output = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        #expect(output["verified"] as? [Bool] == [true], "\(result.stdout)")
        // The body is the contract's: the payload with the command's id, type and creation time.
        let body = try #require(try JSONSerialization.jsonObject(with: signed[0].body) as? [String: Any])
        #expect(body["id"] as? String == "cmd_日本" && body["type"] as? String == "send_step" && body["step"] as? Int == 2)
        #expect((body["created_at"] as? String).flatMap(CRMTimestamp.parse) != nil)
    }

    /// A 429's `Retry-After` pushes the next attempt out at least that far.
    @Test func retryAfterIsHonoured() async throws {
        let clock = FakeClock(Date())
        let receiver = try FlakyReceiver(secret: Self.secret, clock: clock) { _, n in n == 1 ? .tooMany : .ok }
        try await TestDatabase.with { client, _ in
            try await Self.enqueue(client, id: "cmd_1", payload: ["step": 1], createdAt: clock.now.addingTimeInterval(-1))
            try await Self.withReceiver(receiver) { url in
                let dispatcher = try dispatcher(client, url: url, clock: clock)
                #expect(try await dispatcher.pass() == .init(retried: 1))
                clock.advance(by: 3000)   // beyond the backoff (at most 30 s), short of Retry-After
                #expect(try await dispatcher.pass() == .init())
                clock.advance(by: 601)
                #expect(try await dispatcher.pass() == .init(delivered: 1))
            }
        }
    }

    /// A receiver that never acknowledges: dead after `max_attempts`, counted in the backlog, and
    /// `crm-sync outbox replay` revives it with the same key; `outbox deliver --once` delivers it.
    @Test func aCommandThatNeverGoesThroughIsDeadLetteredAndReplayed() async throws {
        let clock = FakeClock(Date())
        let receiver = try FlakyReceiver(secret: Self.secret, clock: clock) { _, _ in .unavailable }
        try await TestDatabase.with { client, database in
            try await Self.enqueue(client, id: "cmd_dead", payload: ["contact": ["external_id": "hubspot:1"], "sequence": "s", "step": 1],
                                   createdAt: clock.now)
            try await Self.enqueue(client, id: "cmd_next", payload: ["contact": ["external_id": "hubspot:1"], "sequence": "s", "step": 2],
                                   createdAt: clock.now.addingTimeInterval(1))
            try await Self.withReceiver(receiver) { url in
                let dispatcher = try dispatcher(client, url: url, clock: clock, maxAttempts: 3)
                var summaries: [OutboxPassSummary] = []
                for _ in 0..<2 {
                    summaries.append(try await dispatcher.pass())
                    clock.advance(by: 7200)
                }
                #expect(await receiver.requests["cmd_next"] == nil, "the contact's next command waits behind it")
                // The third failure kills it; a dead command no longer holds its contact's line.
                summaries.append(try await dispatcher.pass())
                #expect(summaries == [.init(retried: 1), .init(retried: 1), .init(retried: 1, dead: 1)])
                let dead = try #require(try await rows(client).first { $0.id == "cmd_dead" })
                #expect(dead.dead && dead.attempts == 3 && (dead.error ?? "").contains("HTTP 503"), "\(dead)")
                #expect(await receiver.requests["cmd_dead"] == 3)
                #expect(await receiver.requests["cmd_next"] == 1)
                #expect(try await dispatcher.store.backlog() == .init(pending: 1, dead: 1, delivered: 0))

                // The receiver is fixed; the operator replays, then delivers from the command line
                // (which signs with the real clock).
                await receiver.setPlan { _, _ in .ok }
                clock.set(Date())
                let config = FileManager.default.temporaryDirectory.appendingPathComponent("outbox-\(UUID().uuidString).yaml").path
                try "outbound:\n  url: \(url)\n  secret_env: OUTBOX_TEST_SECRET\n  max_attempts: 3\n".write(toFile: config, atomically: true, encoding: .utf8)
                defer { try? FileManager.default.removeItem(atPath: config) }
                let env = ["DATABASE_URL": TestDatabase.text(database), "OUTBOX_TEST_SECRET": Self.secret]
                let wrongID = try await Self.cli(["outbox", "replay", "--id", "cmd_none"], environment: env)
                #expect(wrongID.status != 0 && wrongID.stderr.contains("no dead outbox command with id cmd_none"), "\(wrongID.stderr)")
                let replay = try await Self.cli(["outbox", "replay"], environment: env)
                #expect(replay.status == 0 && replay.stdout.contains("outbox replay: 1 revived"), "\(replay.stdout) \(replay.stderr)")
                let deliver = try await Self.cli(["outbox", "deliver", "--once", "--config", config], environment: env)
                #expect(deliver.status == 0, "\(deliver.stderr)")
                let (afterCLI, bad) = (try await rows(client), await receiver.badSignatures)
                #expect(deliver.stdout.contains("outbox: delivered 1, retried 0, dead 0; pending 1, dead 0"),
                        "\(deliver.stdout) \(deliver.stderr) \(afterCLI) \(bad)")
                // The contact's other command is in its backoff; it goes once due.
                clock.advance(by: 4 * 7200)
                #expect(try await dispatcher.pass() == .init(delivered: 1))
            }
            #expect(try await rows(client).allSatisfy { $0.delivered && !$0.dead })
            #expect(await receiver.effects.map(\.webhookID) == ["cmd_dead", "cmd_next"])
            #expect(await receiver.badSignatures == 0)
        }
    }

    /// Per-contact order: a failing command holds back its contact's later commands, not other
    /// contacts'; concurrent claims by two workers never share a row.
    @Test func aContactsCommandsGoOutInOrderAndClaimsAreExclusive() async throws {
        let clock = FakeClock(Date())
        let receiver = try FlakyReceiver(secret: Self.secret, clock: clock) { id, n in id == "cmd_a1" && n == 1 ? .unavailable : .ok }
        try await TestDatabase.with { client, _ in
            let t0 = clock.now
            clock.advance(by: 10)
            try await Self.enqueue(client, id: "cmd_a1", payload: ["contact": ["external_id": "hubspot:A"], "step": 1], createdAt: t0)
            try await Self.enqueue(client, id: "cmd_b1", payload: ["contact": ["external_id": "hubspot:B"], "step": 1], createdAt: t0.addingTimeInterval(1))
            try await Self.enqueue(client, id: "cmd_a2", payload: ["contact": ["external_id": "hubspot:A"], "step": 2], createdAt: t0.addingTimeInterval(2))
            try await Self.enqueue(client, id: "cmd_a3", payload: ["contact": ["external_id": "hubspot:A"], "step": 3], createdAt: t0.addingTimeInterval(3))

            // Claims: only the head of each contact's line, and two workers split the rows.
            let one = OutboxStore(client: client, logger: logger, worker: "w1"), two = OutboxStore(client: client, logger: logger, worker: "w2")
            async let first = one.claim(limit: 10, now: clock.now, lease: .seconds(60))
            async let second = two.claim(limit: 10, now: clock.now, lease: .seconds(60))
            let (a, b) = try await (first, second)
            #expect(Set(a.map(\.id)).isDisjoint(with: b.map(\.id)))
            #expect(Set(a.map(\.id) + b.map(\.id)) == ["cmd_a1", "cmd_b1"])
            #expect(try await one.claim(limit: 10, now: clock.now, lease: .seconds(60)).isEmpty, "claimed rows are not claimed again")
            // A crashed worker's claim expires.
            clock.advance(by: 61)
            #expect(Set(try await one.claim(limit: 10, now: clock.now, lease: .seconds(60)).map(\.id)) == ["cmd_a1", "cmd_b1"])
            clock.advance(by: 61)

            try await Self.withReceiver(receiver) { url in
                let dispatcher = try dispatcher(client, url: url, clock: clock)
                #expect(try await dispatcher.pass() == .init(delivered: 1, retried: 1))
                #expect(await receiver.effects.map(\.webhookID) == ["cmd_b1"])
                clock.advance(by: 7200)
                #expect(try await dispatcher.pass() == .init(delivered: 3))
            }
            #expect(await receiver.effects.map(\.webhookID) == ["cmd_b1", "cmd_a1", "cmd_a2", "cmd_a3"])
        }
    }

    /// `serve`'s scheduler delivers the outbox continuously, under the `outbox` work lease.
    @Test func theSchedulerDeliversCommandsAsTheyAreCommitted() async throws {
        let clock = FakeClock(Date())
        let receiver = try FlakyReceiver(secret: Self.secret, clock: clock) { _, n in n == 1 ? .lostAck : .ok }
        try await TestDatabase.with { client, _ in
            try await Self.withReceiver(receiver) { url in
                let runtime = Runtime(config: AppConfig(outbound: OutboundConfig(url: url, secret: Self.secret)), logger: logger)
                // A lease long enough that a loaded machine (the whole suite at once on 2 cores) cannot
                // miss a renewal: losing it cancels a pass mid-flight, which is not what this checks.
                let scheduler = Scheduler(runtime: runtime, client: client, outboxInterval: .milliseconds(100), leaseTime: .seconds(30))
                try await withLocalServices([scheduler], logger: logger) {
                    try await Self.enqueue(client, id: "cmd_live", payload: ["contact": ["external_id": "hubspot:9"], "step": 1],
                                           createdAt: Date().addingTimeInterval(-1))
                    let attempted = try await eventually(every: .milliseconds(100)) { try await rows(client).first?.attempts ?? 0 >= 1 }
                    #expect(attempted, "serve's scheduler did not attempt the command")
                }
            }
            // The first answer was a lost acknowledgement: in effect once, and either waiting for its
            // retry or (on a slow machine) already delivered by it.
            let row = try #require(try await rows(client).first)
            #expect(row.attempts >= 1, "\(row)")
            #expect(row.delivered || (row.error ?? "").contains("HTTP 500"), "\(row)")
            #expect(await receiver.effects.map(\.webhookID) == ["cmd_live"])
        }
    }

    /// Records the tasks it is asked to create.
    actor RecordingWriter: TaskWriter {
        private(set) var drafts: [TaskDraft] = []
        func createTask(_ draft: TaskDraft) async throws -> String {
            drafts.append(draft)
            return "T\(drafts.count)"
        }
    }

    /// A `create_task` without a subject is dead at once (retrying cannot fix it); one for a
    /// connector that is not configured is retried (configuring it fixes it); ids lose their
    /// `connector:` prefix.
    @Test func createTaskPayloadsAreReadOrRefused() async throws {
        let writer = RecordingWriter()
        let now = Date()
        try await TestDatabase.with { client, _ in
            let good: [String: Any] = ["contact": ["external_id": "crm:501"], "owner": "crm:77", "deal": 9001, "subject": "Call",
                                       "note": "why", "due": "2026-12-03"]
            try await Self.enqueue(client, id: "t_good", destination: "crm", type: "create_task", payload: good, createdAt: now.addingTimeInterval(-3))
            try await Self.enqueue(client, id: "t_bad", destination: "crm", type: "create_task",
                                   payload: ["contact": ["external_id": "crm:502"]], createdAt: now.addingTimeInterval(-2))
            try await Self.enqueue(client, id: "t_elsewhere", destination: "other", type: "create_task",
                                   payload: ["contact": ["external_id": "other:503"], "subject": "x"], createdAt: now.addingTimeInterval(-1))
            let dispatcher = OutboxDispatcher(
                store: OutboxStore(client: client, logger: logger, worker: "w"),
                target: OutboxRouter(ma: nil, connectors: ["crm": CRMTaskTarget(writer: writer)]), clock: { now }, logger: logger)
            #expect(try await dispatcher.pass() == .init(delivered: 1, retried: 1, dead: 1))
            let state = Dictionary(uniqueKeysWithValues: try await rows(client).map { ($0.id, $0) })
            #expect(state["t_good"]?.delivered == true)
            #expect(state["t_bad"]?.dead == true && state["t_bad"]?.attempts == 1 && state["t_bad"]?.error == "create_task without a subject")
            #expect(state["t_elsewhere"]?.dead == false && state["t_elsewhere"]?.error == "no connector named 'other' is configured")
            let recordID = try await client.query("SELECT crm_record_id FROM crm.outbox WHERE id = 't_good'", logger: logger)
                .collect().first?.decode(String?.self)
            #expect(recordID == "T1")
            #expect(await writer.drafts == [TaskDraft(subject: "Call", body: "why", due: CRMTimestamp.parse("2026-12-03T00:00:00Z"),
                                                      ownerID: "77", contactID: "501", dealID: "9001")])
        }
    }

    // MARK: create_task to the CRMs

    static func withSimulator<T: Sendable>(_ kind: CRMKind, _ state: SimulatorState, _ body: @Sendable (Int) async throws -> T) async throws -> T {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = SimulatorServer(kind: kind, state: state).application(logger: TestDatabase.logger, onRunning: { continuation.yield($0) })
        return try await withServer(app, ports: ports, body)
    }

    static func connector(_ name: String, _ kind: CRMKind, port: Int) throws -> ConnectorConfig {
        let mapping = "\(TestDatabase.packageRoot)/Mappings/\(kind.rawValue).yaml"
        return ConnectorConfig(name: name, kind: kind, baseURL: "http://127.0.0.1:\(port)", token: "sim-token", mappingPath: mapping,
                               mapping: try MappingLoader.load(path: mapping), requestsPerSecond: 1_000)
    }

    /// `create_task` to each CRM: a HubSpot task, a Salesforce Task, a Pipedrive activity, each
    /// read back from the simulator through its API, with the CRM's id stored in the outbox row.
    @Test func createTaskReachesEachCRM() async throws {
        let now = Date()
        let hubspot = SimulatorState(data: SimulatedDataset.generate(seed: 3, deals: 5, now: now), rateLimit: (1_000, 1_000))
        let salesforce = SimulatorState(data: SimulatedDataset.generate(seed: 4, deals: 5, now: now), rateLimit: (1_000, 1_000))
        let pipedrive = SimulatorState(data: PipedriveCompany.generate(seed: 5, deals: 5, now: now), rateLimit: (1_000, 1_000))
        let hsContact = try #require(await hubspot.records("contacts").keys.min())
        let hsDeal = try #require(await hubspot.records("deals").keys.min())
        let hsOwner = try #require(await hubspot.data.owners.first?.id)
        let sfContact = try #require(await salesforce.records("contacts").keys.min())
        let sfDeal = try #require(await salesforce.records("deals").keys.min())
        let sfOwner = try #require(await salesforce.data.owners.first?.id)
        let due = "2026-12-03T00:00:00Z"
        try await TestDatabase.with { client, _ in
            try await Self.withSimulator(.hubspot, hubspot) { hsPort in
                try await Self.withSimulator(.salesforce, salesforce) { sfPort in
                    try await Self.withSimulator(.pipedrive, pipedrive) { pdPort in
                        let config = AppConfig(connectors: [
                            try Self.connector("hs", .hubspot, port: hsPort), try Self.connector("sf", .salesforce, port: sfPort),
                            try Self.connector("pd", .pipedrive, port: pdPort),
                        ])
                        let tasks: [(String, [String: Any])] = [
                            ("hs", ["contact": ["external_id": "hs:\(hsContact)"], "deal": "\(hsDeal)", "owner": "\(hsOwner)"]),
                            ("sf", ["contact": ["external_id": "sf:\(SalesforceID.make(SalesforceID.contact, sfContact))"],
                                    "deal": SalesforceID.make(SalesforceID.opportunity, sfDeal), "owner": SalesforceID.make(SalesforceID.user, sfOwner)]),
                            ("pd", ["contact": ["external_id": "pd:3"], "deal": "3", "owner": "9001"]),
                        ]
                        for (index, (destination, ids)) in tasks.enumerated() {
                            var payload = ids
                            payload["subject"] = "Call: stalled prospect (\(destination))"
                            payload["body"] = "No sales activity for 14 days"
                            payload["due"] = due
                            try await Self.enqueue(client, id: "task_\(destination)", destination: destination, type: "create_task",
                                                   payload: payload, createdAt: now.addingTimeInterval(Double(index - 10)))
                        }
                        let router = try OutboxRouter.make(config: config, http: .shared, policy: OutboxPolicy(), logger: logger)
                        let dispatcher = OutboxDispatcher(store: OutboxStore(client: client, logger: logger, worker: "w"), target: router,
                                                          clock: { now }, logger: logger)
                        let summary = try await dispatcher.pass()
                        let errors = try await rows(client).compactMap { $0.error }
                        #expect(summary == .init(delivered: 3), "\(errors)")
                    }
                }
            }
            let stored = Dictionary(uniqueKeysWithValues: try await client.query(
                "SELECT destination, crm_record_id FROM crm.outbox", logger: logger
            ).collect().map { try $0.decode((String, String?).self) })

            // HubSpot: the task object, with its owner and associations.
            let hsID = try #require(stored["hs"].flatMap { $0 }.flatMap(Int.init))
            let task = try #require(await hubspot.records("tasks")[hsID])
            #expect(task.properties["hs_task_subject"] == "Call: stalled prospect (hs)")
            #expect(task.properties["hubspot_owner_id"] == "\(hsOwner)")
            #expect(await hubspot.linked("tasks->contacts", from: hsID) == [hsContact])
            #expect(await hubspot.linked("tasks->deals", from: hsID) == [hsDeal])

            // Pipedrive: an activity of type task, listed like any other.
            let activity = try #require(await pipedrive.activitiesCreatedThroughAPI.first)
            #expect((stored["pd"] ?? nil) == "\(activity.id)")
            #expect(activity.properties["subject"] == "Call: stalled prospect (pd)" && activity.properties["type"] == "task")
            #expect(activity.properties["person_id"] == "3" && activity.properties["deal_id"] == "3" && activity.properties["owner_id"] == "9001")
        }
        // Salesforce: the Task comes back from a SOQL query over HTTP.
        let sfID = try #require(await salesforce.records("tasks").values.first { $0.properties["hs_task_subject"]?.hasSuffix("(sf)") == true }?.id)
        let taskID = SalesforceID.make(SalesforceID.task, sfID)
        try await Self.withSimulator(.salesforce, salesforce) { port in
            let soql = "SELECT Id, Subject, WhoId, WhatId, OwnerId, ActivityDate, Status FROM Task WHERE Id = '\(taskID)'"
            var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/services/data/v59.0/query?q=" + soql.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            request.headers.add(name: "Authorization", value: "Bearer sim-token")
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
            let body = try await response.body.collect(upTo: 1 << 20)
            let json = try #require(try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])
            let record = try #require((json["records"] as? [[String: Any]])?.first, "\(json)")
            #expect(record["Subject"] as? String == "Call: stalled prospect (sf)")
            #expect(record["WhoId"] as? String == SalesforceID.make(SalesforceID.contact, sfContact))
            #expect(record["WhatId"] as? String == SalesforceID.make(SalesforceID.opportunity, sfDeal))
            #expect(record["OwnerId"] as? String == SalesforceID.make(SalesforceID.user, sfOwner))
            #expect(record["ActivityDate"] as? String == "2026-12-03")
            #expect(record["Status"] as? String == "Not Started")
        }
    }

    /// The backoff doubles, stays capped, and jitters within [d/2, d].
    @Test func backoffIsExponentialCappedAndJittered() {
        let policy = OutboxPolicy(baseDelay: .seconds(10), maxDelay: .seconds(300))
        #expect(policy.backoff(afterFailures: 1, random: 1) == 10)
        #expect(policy.backoff(afterFailures: 1, random: 0) == 5)
        #expect(policy.backoff(afterFailures: 3, random: 1) == 40)
        #expect(policy.backoff(afterFailures: 20, random: 1) == 300)
        #expect(policy.backoff(afterFailures: 20, random: 0) == 150)
    }
}
