import AsyncHTTPClient
import CRMSimulator
import CRMSyncConnectors
import CRMSyncCore
import Foundation
import Hummingbird
import Logging
import Testing

/// The Salesforce connector against the simulated org, without a database: what pages it produces.
@Suite struct SalesforceConnectorTests {
    static let opportunities = SyncStream("Opportunity", .deals)

    func withConnector(
        _ state: SimulatorState, pageSize: Int = 2000, attempts: Int = 6, token: String = "sim-token",
        _ body: @Sendable (SalesforceConnector) async throws -> Void
    ) async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = SimulatorServer(kind: .salesforce, state: state).application(
            logger: HubSpotConnectorTests.quiet, onRunning: { continuation.yield($0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let http = CRMHTTPClient(
                connector: "sf", http: .shared, requestsPerSecond: 5_000, searchRequestsPerSecond: 5_000,
                retry: RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(10)),
                authorization: [("Authorization", "Bearer \(token)")], timeout: .seconds(30), logger: HubSpotConnectorTests.quiet)
            try await body(SalesforceConnector(name: "sf", instanceURL: "http://127.0.0.1:\(port)", http: http, pageSize: pageSize))
            group.cancelAll()
        }
    }

    func readAll(_ connector: SalesforceConnector, _ stream: SyncStream, anchor: Date? = nil, cursor: SyncCursor = .start)
        async throws -> (ids: [String], cursor: SyncCursor, pages: Int)
    {
        var pager = connector.pager(for: stream, anchor: anchor, cursor: cursor)
        var ids: [String] = []
        var position = cursor
        var pages = 0
        while let page = try await pager.next() {
            ids += page.stamps.map(\.id)
            position = position.advanced(over: page.stamps)
            pages += 1
        }
        return (ids, position, pages)
    }

    /// Every opportunity stamped in the same millisecond, more than fit a page: all are read once,
    /// and a run that stopped after the first page resumes with exactly the rest.
    @Test func recordsSharingOneSystemModstampAcrossPagesAreNeitherLostNorDoubled() async throws {
        var data = SimulatedDataset.generate(seed: 1, deals: 500, now: Date())
        let stamp: Int64 = 1_790_000_000_123
        for id in data.objects["deals"]!.keys {
            data.objects["deals"]![id]!.updatedAt = stamp
            data.objects["deals"]![id]!.archived = false
        }
        try await withConnector(SimulatorState(data: data, rateLimit: (5_000, 5_000)), pageSize: 200) { connector in
            let all = try await readAll(connector, Self.opportunities)
            #expect(all.ids.count == 500)
            #expect(Set(all.ids).count == 500)
            #expect(all.pages == 3)
            #expect(all.cursor.modifiedAt == CRMTimestamp.fromMillis(stamp))
            #expect(all.cursor.idsAtModifiedAt.count == 500)
            // Resuming exactly at that cursor reads nothing again.
            let again = try await readAll(connector, Self.opportunities, anchor: all.cursor.modifiedAt, cursor: all.cursor)
            #expect(again.ids.isEmpty)

            // A run that committed only its first page: the resumed query returns the other 300.
            var pager = connector.pager(for: Self.opportunities, anchor: nil, cursor: .start)
            let first = try #require(try await pager.next())
            let cursor = SyncCursor.start.advanced(over: first.stamps)
            let rest = try await readAll(connector, Self.opportunities, anchor: cursor.modifiedAt, cursor: cursor)
            #expect(rest.ids.count == 300)
            #expect(Set(rest.ids).isDisjoint(with: first.stamps.map(\.id)))
            #expect(Set(rest.ids).union(first.stamps.map(\.id)) == Set(all.ids))
        }
    }

    /// A large result comes in pages through `nextRecordsUrl` until `done`, in SystemModstamp order.
    @Test func pagesFollowNextRecordsUrlUntilDone() async throws {
        let data = SimulatedDataset.generate(seed: 2, deals: 1_100, now: Date())
        let state = SimulatorState(data: data, rateLimit: (5_000, 5_000))
        try await withConnector(state, pageSize: 200) { connector in
            var pager = connector.pager(for: Self.opportunities, anchor: nil, cursor: .start)
            var stamps: [Date] = []
            var ids: [String] = []
            while let page = try await pager.next() {
                #expect(page.batch.deals.count <= 200)
                stamps += page.stamps.map(\.modifiedAt)
                ids += page.batch.deals.map(\.externalID)
            }
            let expected = Set(data.objects["deals"]!.values.filter { !$0.archived }.map { SalesforceID.make(SalesforceID.opportunity, $0.id) })
            #expect(Set(ids) == expected)
            #expect(ids.count == expected.count)
            #expect(stamps == stamps.sorted())
            let log = await state.log
            #expect(log.filter { $0.path.hasSuffix("/query") && $0.page.hasPrefix("01g") }.count == (expected.count + 199) / 200 - 1)
        }
    }

    @Test func salesforceErrorBodiesBecomeOneLineNamingConnectorObjectAndProblem() async throws {
        let data = SimulatedDataset.generate(seed: 3, deals: 20, now: Date())
        // An expired session.
        try await withConnector(SimulatorState(data: data, rateLimit: (5_000, 5_000)), token: "expired") { connector in
            var pager = connector.pager(for: Self.opportunities, anchor: nil, cursor: .start)
            await #expect(throws: ConnectorError.authentication(connector: "sf", message: "query Opportunity: INVALID_SESSION_ID: Session expired or invalid")) {
                _ = try await pager.next()
            }
            #expect(connector.http.stats.retries == 0)
        }
        // The org's daily request quota is used up: no retries, the cursor is kept.
        let quota = SimulatorState(data: data, rateLimit: (5_000, 5_000))
        await quota.setDailyRequestLimit(0)
        try await withConnector(quota) { connector in
            do {
                _ = try await connector.deletions(for: Self.opportunities, since: nil)
                Issue.record("expected the quota error")
            } catch let error as ConnectorError {
                #expect(error == .quotaExhausted(connector: "sf", message: "deleted Opportunity: REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."))
                #expect(!error.description.contains("\n"))
                #expect(error.description.hasPrefix("sf: API quota exhausted"))
            }
            #expect(connector.http.stats.retries == 0)
        }
        // Too many concurrent requests (Salesforce's 403, not a 429) are retried, then given up on.
        var faults = FaultSpec()
        faults.rateLimited = 1.0
        try await withConnector(SimulatorState(data: data, faults: faults, rateLimit: (5_000, 5_000)), attempts: 3) { connector in
            var pager = connector.pager(for: SyncStream("Account", .accounts), anchor: nil, cursor: .start)
            await #expect(throws: ConnectorError.gaveUp(
                connector: "sf", attempts: 3,
                lastError: "sf: throttled (query Account: REQUEST_LIMIT_EXCEEDED: ConcurrentPerOrgLongTxn Limit exceeded.)")) {
                _ = try await pager.next()
            }
            #expect(connector.http.stats.retries == 2)
        }
    }

    /// `deleted/` lists what was deleted inside the window, by Salesforce id.
    @Test func theDeletedEndpointReportsDeletionsInsideTheWindow() async throws {
        let now = Date()
        var data = SimulatedDataset.generate(seed: 4, deals: 300, now: now)
        let nowMs = CRMTimestamp.millis(now)
        // Deleted three minutes ago, and one long before the window.
        for id in [3, 4, 5] {
            data.objects["deals"]![id]!.archived = true
            data.objects["deals"]![id]!.archivedAt = nowMs - 180_000
        }
        data.objects["deals"]![6]!.archived = true
        data.objects["deals"]![6]!.archivedAt = nowMs - 3_600_000
        let window = nowMs - 15 * 86_400_000
        let expected = data.objects["deals"]!.values.filter { $0.archived && ($0.archivedAt ?? 0) >= window }
            .map { SalesforceID.make(SalesforceID.opportunity, $0.id) }
        try await withConnector(SimulatorState(data: data, rateLimit: (5_000, 5_000))) { connector in
            let recent = try await connector.deletions(for: Self.opportunities, since: now.addingTimeInterval(-600))
            #expect(Set(recent.map(\.externalID)) == Set([3, 4, 5].map { SalesforceID.make(SalesforceID.opportunity, $0) }))
            #expect(recent.allSatisfy { $0.objectType == .deals && CRMTimestamp.millis($0.deletedAt) == nowMs - 180_000 })
            // Without a cursor: everything the recycle bin still holds (15 days).
            let all = try await connector.deletions(for: Self.opportunities, since: nil)
            #expect(Set(all.map(\.externalID)) == Set(expected))
            #expect(all.count == expected.count)
            // Objects whose deletions travel elsewhere are not asked for.
            #expect(try await connector.deletions(for: SyncStream("OpportunityHistory", .stageHistory), since: nil).isEmpty)
        }
    }

    /// A merge deletes the absorbed records; `MasterRecordId` (through queryAll) names the survivor.
    @Test func mergedContactsPointAtTheSurvivingContact() async throws {
        let now = Date()
        let nowMs = CRMTimestamp.millis(now)
        var data = SimulatedDataset.generate(seed: 5, deals: 50, now: now)
        data.objects["contacts"]![1]!.properties["hs_merged_object_ids"] = "2"
        for id in [2, 3] {
            data.objects["contacts"]![id]!.archived = true
            data.objects["contacts"]![id]!.archivedAt = nowMs - 180_000
        }
        try await withConnector(SimulatorState(data: data, rateLimit: (5_000, 5_000))) { connector in
            let gone = try await connector.deletions(for: SyncStream("Contact", .contacts), since: now.addingTimeInterval(-600))
            let merged = SalesforceID.make(SalesforceID.contact, 2), deleted = SalesforceID.make(SalesforceID.contact, 3)
            #expect(Set(gone.map(\.externalID)) == [merged, deleted])
            #expect(gone.first { $0.externalID == merged }?.mergedInto == SalesforceID.make(SalesforceID.contact, 1))
            #expect(gone.first { $0.externalID == deleted }?.mergedInto == nil)
            #expect(gone.allSatisfy { $0.objectType == .contacts })
        }
    }

    /// An org without multiple currencies has no `CurrencyIsoCode`: the connector asks again
    /// without it and takes the org's corporate currency.
    @Test func aSingleCurrencyOrgGetsItsCorporateCurrency() async throws {
        var data = SimulatedDataset.generate(seed: 6, deals: 60, now: Date())
        data.multiCurrency = false
        let live = data.objects["deals"]!.values.filter { !$0.archived }.count
        let state = SimulatorState(data: data, rateLimit: (5_000, 5_000))
        try await withConnector(state) { connector in
            var deals: [CRMDeal] = []
            var pager = connector.pager(for: Self.opportunities, anchor: nil, cursor: .start)
            while let page = try await pager.next() { deals += page.batch.deals }
            #expect(deals.count == live)
            #expect(deals.allSatisfy { $0.currency == "JPY" })
            var campaigns: [CRMCampaign] = []
            var campaignPager = connector.pager(for: SyncStream("Campaign", .campaigns), anchor: nil, cursor: .start)
            while let page = try await campaignPager.next() { campaigns += page.batch.campaigns }
            #expect(!campaigns.isEmpty)
            #expect(campaigns.allSatisfy { $0.currency == "JPY" && $0.actualCost != nil })
            // Per stream: the refused query, the org's currency, the query again (one page each).
            #expect(connector.http.stats.requests == 6)
        }
    }

    /// A clock the test moves forward.
    final class TestClock: @unchecked Sendable {
        private let lock = NSLock()
        private var offset: TimeInterval = 0
        var now: Date { lock.withLock { Date().addingTimeInterval(offset) } }
        func advance(_ seconds: TimeInterval) { lock.withLock { offset += seconds } }
    }

    /// Salesforce expires a query locator left idle for 15 minutes: the pager queries again from
    /// the last stamp it handed out and goes on, losing and doubling nothing.
    @Test func anExpiredQueryLocatorIsReplacedByANewQueryFromTheLastStamp() async throws {
        var data = SimulatedDataset.generate(seed: 7, deals: 700, now: Date())
        // A third of the deals share one stamp, in a group that straddles the end of the second
        // page: the re-anchored query starts inside it.
        let tie = data.objects["deals"]!.values.map(\.updatedAt).sorted()[350]
        for id in data.objects["deals"]!.keys where id % 3 == 0 { data.objects["deals"]![id]!.updatedAt = tie }
        let live = Set(data.objects["deals"]!.values.filter { !$0.archived }.map { SalesforceID.make(SalesforceID.opportunity, $0.id) })
        let clock = TestClock()
        let state = SimulatorState(data: data, rateLimit: (5_000, 5_000), clock: { clock.now })
        try await withConnector(state, pageSize: 200) { connector in
            var pager = connector.pager(for: Self.opportunities, anchor: nil, cursor: .start)
            var ids: [String] = []
            var cursor = SyncCursor.start
            var pages = 0
            while let page = try await pager.next() {
                ids += page.stamps.map(\.id)
                cursor = cursor.advanced(over: page.stamps)
                pages += 1
                if pages == 2 { clock.advance(16 * 60) }
            }
            #expect(ids.count == live.count)
            #expect(Set(ids) == live)
            #expect(cursor.idsAtModifiedAt.count >= 1)
            #expect(await state.log.filter { $0.page == "Opportunity:0" }.count == 2, "one query, then one more after the locator expired")
        }
    }
}
