import AsyncHTTPClient
import CRMSyncApp
import CRMSyncConfig
import CRMSyncServer
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Logging
import PostgresNIO
import ServiceLifecycle
import Synchronization
import Testing

/// The receiver as `serve` runs it (group-commit batcher, loopback HTTP) under concurrent,
/// duplicated delivery, with the inbox worker running at the same time.
@Suite struct ConcurrentDeliveryTests {
    /// Runs the receiver on a free loopback port until `body` returns.
    static func withReceiver<T: Sendable>(client: PostgresClient, batching: InboxBatcher.Settings = .init(),
                                          _ body: @Sendable (Int) async throws -> T) async throws -> T {
        let config = AppConfig(events: EventsConfig(secret: WebhookLoad.secret))
        let receiver = WebhookReceiver(config: config, client: client, logger: TestDatabase.logger, batching: batching)
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        let services = receiver.services(host: "127.0.0.1", port: 0, logger: TestDatabase.logger) { port in continuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: services, logger: TestDatabase.logger))
        return try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw CancellationError() }
            do {
                let result = try await body(port)
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
                return result
            } catch {
                tasks.cancelAll()
                throw error
            }
        }
    }

    /// Sends a thousand events twice (the second time under another message id, as a sender's
    /// retry does), shuffled, from eight clients, while the inbox worker applies them; the HTTP
    /// statuses it got, by status.
    static func deliverTwice(client: PostgresClient) async throws -> [Int: Int] {
        let sends = Locked<[(id: String, body: String)]>({
            var seeded = SeededShuffle(seed: 7)
            let events = (0..<1_000).map { (id: "evt_\($0)", body: WebhookLoad.event("evt_\($0)", contact: $0 % 97)) }
            var all = events.map { (id: "a_" + $0.id, body: $0.body) } + events.map { (id: "b_" + $0.id, body: $0.body) }
            all.shuffle(using: &seeded)
            return all
        }())
        let statuses = Locked<[Int: Int]>([:])
        let processing = Locked(true)
        try await Self.withReceiver(client: client) { port in
            let load = WebhookLoad(port: port)
            try await withThrowingTaskGroup(of: Void.self) { group in
                // The worker applies the inbox while deliveries are still arriving.
                group.addTask {
                    while processing.withLock({ $0 }) {
                        try await InboxProcessor(client: client, logger: TestDatabase.logger, batchSize: 200).drain()
                        try await Task.sleep(for: .milliseconds(5))
                    }
                }
                try await withThrowingTaskGroup(of: Void.self) { clients in
                    for _ in 0..<8 {
                        clients.addTask {
                            // The shared client keeps up to 8 connections per host: one per task here.
                            while !Task.isCancelled, let next = sends.withLock({ $0.popLast() }) {
                                let status = await load.post(next.body, messageID: next.id, client: .shared) ?? -1
                                statuses.withLock { $0[status, default: 0] += 1 }
                            }
                        }
                    }
                    try await clients.waitForAll()
                }
                processing.withLock { $0 = false }
                try await group.waitForAll()
            }
        }
        return statuses.withLock { $0 }
    }

    @Test(.timeLimit(.minutes(10)))
    func thousandEventsSentTwiceShuffledFromEightClientsHaveOneRowAndOneEffectEach() async throws {
        try await TestDatabase.with(maxConnections: 12) { client, _ in
            let statuses = try await Self.deliverTwice(client: client)
            #expect(statuses == [200: 2_000])
            _ = try await InboxProcessor(client: client, logger: TestDatabase.logger).drain()
            let db = TestDatabase.logger
            let counts = try await client.query(
                """
                SELECT (SELECT count(*) FROM crm.inbox)::int8, (SELECT count(DISTINCT delivery_id) FROM crm.inbox)::int8,
                       (SELECT count(*) FROM crm.touches)::int8, (SELECT count(DISTINCT touch_key) FROM crm.touches)::int8,
                       (SELECT count(*) FROM crm.inbox WHERE processed_at IS NULL)::int8, (SELECT count(*) FROM crm.dead_letters)::int8
                """, logger: db).collect().first!.decode((Int64, Int64, Int64, Int64, Int64, Int64).self)
            #expect(counts.0 == 1_000 && counts.1 == 1_000)
            #expect(counts.2 == 1_000 && counts.3 == 1_000)
            #expect(counts.4 == 0 && counts.5 == 0)
        }
    }

    /// A time limit cancels the test's task: the receiver, its batcher, the inbox worker, the
    /// clients and the test database must all stop on it, so the run goes on to the next test.
    @Test(.timeLimit(.minutes(10)))
    func cancellingTheDeliveryMidwayEndsEveryTaskPromptly() async throws {
        let started = Locked(false)
        let run = Task {
            try await TestDatabase.with(maxConnections: 12) { client, _ in
                started.withLock { $0 = true }
                return try await Self.deliverTwice(client: client)
            }
        }
        #expect(try await eventually { started.withLock { $0 } }, "the delivery did not start")
        try await Task.sleep(for: .milliseconds(700))   // mid-delivery: requests and commits in flight
        run.cancel()
        let ended = try await ends(run, within: .seconds(60))
        #expect(ended, "the delivery was still running 60 s after it was cancelled")
    }
}

/// Fisher–Yates needs a seeded generator for a reproducible order.
struct SeededShuffle: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
