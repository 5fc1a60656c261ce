import AsyncHTTPClient
import CRMSimulator
import CRMSyncConnectors
import CRMSyncCore
import Foundation
import Hummingbird
import Logging
import Testing

/// The HubSpot connector against the simulator, without a database: what pages it produces.
@Suite struct HubSpotConnectorTests {
    static var quiet: Logger {
        var logger = Logger(label: "connector-test")
        logger.logLevel = .critical
        return logger
    }

    func withConnector(
        _ state: SimulatorState, pageSize: Int = 200, rate: Double = 2_000, attempts: Int = 6,
        _ body: @Sendable (HubSpotConnector) async throws -> Void
    ) async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = SimulatorServer(kind: .hubspot, state: state).application(logger: Self.quiet, onRunning: { continuation.yield($0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let http = CRMHTTPClient(
                connector: "hs", http: .shared, requestsPerSecond: rate, searchRequestsPerSecond: rate,
                retry: RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(10)),
                authorization: [("Authorization", "Bearer sim-token")], timeout: .seconds(30), logger: Self.quiet)
            try await body(HubSpotConnector(name: "hs", baseURL: "http://127.0.0.1:\(port)", http: http, pageSize: pageSize))
            group.cancelAll()
        }
    }

    /// Every deal stamped in the same millisecond, more of them than fit a page: the strict-`>`
    /// trap loses all but the first page; re-anchoring with the ids-at-stamp set loses none.
    @Test func recordsSharingOneMillisecondAcrossPagesAreAllRead() async throws {
        var data = SimulatedDataset.generate(seed: 1, deals: 120, now: Date())
        let stamp: Int64 = 1_790_000_000_123
        for id in data.objects["deals"]!.keys {
            data.objects["deals"]![id]!.updatedAt = stamp
            data.objects["deals"]![id]!.archived = false
            data.objects["deals"]![id]!.properties["hs_merged_object_ids"] = nil
        }
        try await withConnector(SimulatorState(data: data, rateLimit: (5_000, 5_000)), pageSize: 25) { connector in
            var pager = connector.pager(for: SyncStream("deals", .deals), anchor: nil, cursor: .start)
            var ids: [String] = []
            var cursor = SyncCursor.start
            while let page = try await pager.next() {
                ids += page.batch.deals.map(\.externalID)
                cursor = cursor.advanced(over: page.stamps)
            }
            #expect(ids.count == 120)
            #expect(Set(ids).count == 120)
            #expect(cursor.modifiedAt == CRMTimestamp.fromMillis(stamp))
            #expect(cursor.idsAtModifiedAt.count == 120)
            // Resuming exactly at that cursor reads nothing again.
            var resumed = connector.pager(for: SyncStream("deals", .deals), anchor: cursor.modifiedAt, cursor: cursor)
            var again = 0
            while let page = try await resumed.next() { again += page.batch.deals.count }
            #expect(again == 0)
        }
    }

    /// More than 10,000 matching records: the connector never asks past HubSpot's search ceiling.
    @Test func theTenThousandResultCeilingIsNeverHit() async throws {
        let data = SimulatedDataset.generate(seed: 2, deals: 10_400, now: Date())
        let state = SimulatorState(data: data, rateLimit: (5_000, 5_000))
        try await withConnector(state) { connector in
            var pager = connector.pager(for: SyncStream("contacts", .contacts), anchor: nil, cursor: .start)
            var ids = Set<String>()
            while let page = try await pager.next() { ids.formUnion(page.batch.contacts.map(\.externalID)) }
            #expect(ids.count == data.objects["contacts"]!.count)
            #expect(ids.count > 10_000)
            #expect(await state.log.filter { $0.status == 400 }.isEmpty)
        }
    }

    @Test func serverErrorsAreRetriedAndAPersistentFailureGivesUpWithOneMessage() async throws {
        let data = SimulatedDataset.generate(seed: 3, deals: 30, now: Date())
        var faults = FaultSpec()
        faults.serverError = 1.0
        let state = SimulatorState(data: data, faults: faults, rateLimit: (5_000, 5_000))
        try await withConnector(state, attempts: 3) { connector in
            var pager = connector.pager(for: SyncStream("deals", .deals), anchor: nil, cursor: .start)
            await #expect(throws: ConnectorError.gaveUp(connector: "hs", attempts: 3, lastError: "hs: HTTP 500: INTERNAL_ERROR: internal error")) {
                _ = try await pager.next()
            }
            #expect(connector.http.stats.retries == 2)
        }
    }

    @Test func truncatedBodiesAreRetried() async throws {
        let data = SimulatedDataset.generate(seed: 4, deals: 30, now: Date())
        var faults = FaultSpec()
        // 0.3^12: a request failing every attempt is a one-in-two-million event, not a flaky test.
        faults.truncate = 0.3
        try await withConnector(SimulatorState(data: data, faults: faults, seed: 4, rateLimit: (5_000, 5_000)), pageSize: 5, attempts: 12) { connector in
            var pager = connector.pager(for: SyncStream("deals", .deals), anchor: nil, cursor: .start)
            var count = 0
            while let page = try await pager.next() { count += page.batch.deals.count }
            #expect(count == data.objects["deals"]!.values.filter { !$0.archived }.count)
            #expect(connector.http.stats.retries > 0)
        }
    }
}

@Suite struct RateLimiterTests {
    @Test func theBucketSpacesRequestsAtTheConfiguredRate() async throws {
        let limiter = RateLimiter(ratePerSecond: 20, burst: 1)
        let start = ContinuousClock.now
        for _ in 0..<11 { try await limiter.acquire() }
        let elapsed = ContinuousClock.now - start
        // Ten intervals of 50 ms at the least; the bound is loose on purpose (it is not a benchmark).
        #expect(elapsed >= .milliseconds(450))
    }

    @Test func backoffGrowsIsCappedAndRespectsRetryAfter() {
        let policy = RetryPolicy(maxAttempts: 6, baseDelay: .milliseconds(100), maxDelay: .seconds(1))
        for attempt in 1...8 {
            let delay = policy.delay(afterAttempt: attempt, retryAfter: nil)
            #expect(delay <= .seconds(1))
        }
        #expect(policy.delay(afterAttempt: 1, retryAfter: .seconds(5)) >= .seconds(5))
    }
}
