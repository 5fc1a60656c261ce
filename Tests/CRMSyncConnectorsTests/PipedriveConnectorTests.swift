import AsyncHTTPClient
import CRMSimulator
@testable import CRMSyncConnectors
import CRMSyncCore
import Foundation
import Hummingbird
import Logging
import NIOHTTP1
import Testing

/// The Pipedrive connector against the Pipedrive simulator, without a database.
@Suite struct PipedriveConnectorTests {
    static var quiet: Logger {
        var logger = Logger(label: "connector-test")
        logger.logLevel = .critical
        return logger
    }

    func withConnector(
        _ state: SimulatorState, pageSize: Int = 500, rate: Double = 5_000, attempts: Int = 6, token: String = "sim-token",
        _ body: @Sendable (PipedriveConnector) async throws -> Void
    ) async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = SimulatorServer(kind: .pipedrive, state: state).application(logger: Self.quiet, onRunning: { continuation.yield($0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let http = CRMHTTPClient(
                connector: "pd", http: .shared, requestsPerSecond: rate, searchRequestsPerSecond: rate,
                retry: RetryPolicy(maxAttempts: attempts, baseDelay: .milliseconds(10)),
                authorization: PipedriveConnector.authorization(token: token), timeout: .seconds(30), logger: Self.quiet)
            try await body(PipedriveConnector(name: "pd", baseURL: "http://127.0.0.1:\(port)", http: http, pageSize: pageSize))
            group.cancelAll()
        }
    }

    func readAll(_ connector: PipedriveConnector, _ stream: SyncStream, anchor: Date? = nil, cursor: SyncCursor = .start) async throws -> (pages: [ChangePage], cursor: SyncCursor) {
        var pager = connector.pager(for: stream, anchor: anchor, cursor: cursor)
        var pages: [ChangePage] = []
        var position = cursor
        while let page = try await pager.next() {
            pages.append(page)
            position = position.advanced(over: page.stamps)
        }
        return (pages, position)
    }

    static let deals = SyncStream("deals", .deals)

    /// A bulk edit stamps every deal with one second, more than fit a page: the keyset cursor
    /// crosses the tie within a run, the ids-at-stamp set makes the next run read nothing again.
    @Test func dealsSharingOneUpdateTimeAcrossPagesAreReadOnceEach() async throws {
        var data = PipedriveCompany.generate(seed: 1, deals: 120, now: Date())
        let stamp: Int64 = 1_790_000_000_000
        for id in data.objects["deals"]!.keys {
            data.objects["deals"]![id]!.updatedAt = stamp
            data.objects["deals"]![id]!.archived = false
        }
        try await withConnector(SimulatorState(data: data, rateLimit: (5_000, 5_000)), pageSize: 25) { connector in
            let (pages, cursor) = try await readAll(connector, Self.deals)
            let ids = pages.flatMap { $0.batch.deals.map(\.externalID) }
            #expect(ids.count == 120)
            #expect(Set(ids).count == 120)
            #expect(cursor.modifiedAt == CRMTimestamp.fromMillis(stamp))
            #expect(cursor.idsAtModifiedAt.count == 120)
            let (again, _) = try await readAll(connector, Self.deals, anchor: cursor.modifiedAt, cursor: cursor)
            #expect(again.flatMap(\.batch.deals).isEmpty)
        }
    }

    /// Persons over many pages, then an incremental read from the middle: everything at or after
    /// the anchor, nothing before it, sent as RFC 3339 without fractional seconds.
    @Test func paginationFollowsNextCursorAndUpdatedSince() async throws {
        let data = PipedriveCompany.generate(seed: 3, deals: 400, now: Date())
        let state = SimulatorState(data: data, rateLimit: (5_000, 5_000))
        let persons = data.objects["persons"]!
        try await withConnector(state, pageSize: 50) { connector in
            let stream = SyncStream("persons", .contacts)
            let (pages, cursor) = try await readAll(connector, stream)
            let ids = pages.flatMap { $0.batch.contacts.map(\.externalID) }
            #expect(ids.count == persons.count)
            #expect(Set(ids) == Set(persons.keys.map(String.init)))
            #expect(pages.count >= (persons.count + 49) / 50)
            let stamps = pages.flatMap(\.stamps).map(\.modifiedAt)
            #expect(stamps == stamps.sorted(), "ascending update_time")
            #expect(cursor.modifiedAt == CRMTimestamp.fromMillis(persons.values.map(\.updatedAt).max()!))

            let middle = persons.values.map(\.updatedAt).sorted()[persons.count / 2]
            let anchor = CRMTimestamp.fromMillis(middle).addingTimeInterval(0.25)   // fractions are floored
            let (later, _) = try await readAll(connector, stream, anchor: anchor)
            let expected = Set(persons.values.filter { $0.updatedAt >= middle }.map { String($0.id) })
            #expect(Set(later.flatMap { $0.batch.contacts.map(\.externalID) }) == expected)
            #expect(await state.log.allSatisfy { $0.status == 200 })

            let person = try #require(pages.first?.batch.contacts.first)
            let source = persons[Int(person.externalID)!]!
            #expect(person.email == source.properties["email"])
            #expect(person.accountID == source.properties["org_id"])
            #expect(person.owner == source.properties["owner_id"])
        }
    }

    @Test func errorEnvelopesBecomeClearErrors() async throws {
        let state = SimulatorState(data: PipedriveCompany.generate(seed: 4, deals: 20, now: Date()), rateLimit: (5_000, 5_000))
        try await withConnector(state, token: "wrong") { connector in
            let error = await #expect(throws: ConnectorError.self) { _ = try await readAll(connector, Self.deals) }
            #expect(error == .authentication(connector: "pd", message: "unauthorized access"))
            #expect(error?.description.contains("token_env") == true)
        }
        try await withConnector(state) { connector in
            let badLimit = await #expect(throws: ConnectorError.self) {
                let _: PipedriveWire.Envelope<[PipedriveWire.Deal]> = try await connector.get("\(connector.baseURL)/api/v2/deals?limit=900")
            }
            guard case .http(_, 400, let message) = badLimit else { Issue.record("got \(String(describing: badLimit))"); return }
            #expect(message.contains("limit"))
            let badSince = await #expect(throws: ConnectorError.self) {
                let _: PipedriveWire.Envelope<[PipedriveWire.Deal]> = try await connector.get("\(connector.baseURL)/api/v2/deals?updated_since=2026-01-01T10:20:00.500Z")
            }
            #expect(badSince?.description.contains("fractional seconds") == true)
            let missing = await #expect(throws: ConnectorError.self) { _ = try await connector.flowChanges(dealID: 999_999) }
            #expect(missing == .http(connector: "pd", status: 404, message: "Deal not found"))
            // A few attempts only: 500s are retried, then the error names what happened.
            await state.setFaults({ var f = FaultSpec(); f.serverError = 1; return f }())
            let gaveUp = await #expect(throws: ConnectorError.self) { _ = try await readAll(connector, Self.deals) }
            #expect(gaveUp?.description.contains("gave up after 6 attempts") == true)
            #expect(gaveUp?.description.contains("Internal server error") == true)
        }
    }

    @Test func theDailyBudgetRunningOutIsAQuotaNotARetry() async throws {
        let state = SimulatorState(data: PipedriveCompany.generate(seed: 4, deals: 5, now: Date()), rateLimit: (5_000, 5_000))
        try await withConnector(state) { connector in
            var headers = HTTPHeaders()
            headers.add(name: "x-daily-ratelimit-token-remaining", value: "0")
            let body = Data(#"{"success":false,"error":"Request over limit","errorCode":429}"#.utf8)
            let error = connector.classify(.init(status: 429, headers: headers, body: body))
            #expect(error == .quotaExhausted(connector: "pd", message: "daily API token budget used up"))
            let burst = connector.classify(.init(status: 429, headers: HTTPHeaders(), body: body))
            #expect(burst == .http(connector: "pd", status: 429, message: "Request over limit"))
        }
    }

    /// Deleted deals (and merged-away ones, which Pipedrive lists as deleted) come from
    /// `status=deleted`; the ordinary listing never shows them.
    @Test func deletedAndMergedDealsAreReportedAsDeletions() async throws {
        let data = PipedriveCompany.generate(seed: 5, deals: 650, now: Date())
        let state = SimulatorState(data: data, rateLimit: (5_000, 5_000))
        let deleted = data.objects["deals"]!.values.filter(\.archived)
        #expect(deleted.contains { $0.properties["merged_to_id"] != nil })
        try await withConnector(state, pageSize: 100) { connector in
            let deletions = try await connector.deletions(for: Self.deals, since: nil)
            #expect(Set(deletions.map(\.externalID)) == Set(deleted.map { String($0.id) }))
            for deletion in deletions {
                #expect(deletion.deletedAt == CRMTimestamp.fromMillis(data.objects["deals"]![Int(deletion.externalID)!]!.archivedAt!))
            }
            let (pages, _) = try await readAll(connector, Self.deals)
            let listed = Set(pages.flatMap { $0.batch.deals.map(\.externalID) })
            #expect(listed.isDisjoint(with: deletions.map(\.externalID)))
            #expect(listed.count == data.objects["deals"]!.count - deleted.count)
            // Only deletions since the anchor.
            let later = try await connector.deletions(for: Self.deals, since: Date().addingTimeInterval(3_600))
            #expect(later.isEmpty)
        }
    }

    /// Each deal's history, rebuilt from its flow, equals the simulator's, with Pipedrive's own
    /// times; won and lost are statuses in Pipedrive and arrive as the stages `won` / `lost`.
    @Test func flowBecomesStageHistory() async throws {
        let state = SimulatorState(data: PipedriveCompany.generate(seed: 6, deals: 300, now: Date()), rateLimit: (5_000, 5_000))
        for _ in 0..<60 { await state.mutatePipedriveDeal(backdated: false) }
        let data = await state.data
        try await withConnector(state, pageSize: 100) { connector in
            let (pages, _) = try await readAll(connector, Self.deals)
            let deals = pages.flatMap(\.batch.deals)
            #expect(deals.count == data.objects["deals"]!.values.filter { !$0.archived }.count)
            var closed = 0
            for deal in deals {
                let source = data.objects["deals"]![Int(deal.externalID)!]!
                let expected = source.stageHistory.map { StageChange(stage: $0.0, enteredAt: CRMTimestamp.fromMillis($0.1)) }
                #expect(deal.stageHistory == expected, "deal \(deal.externalID)")
                #expect(deal.stage == PipedriveCompany.effectiveStage(source))
                #expect(deal.pipeline == "1")
                #expect(deal.contactIDs == [source.properties["person_id"]!])
                #expect(deal.accountIDs == [source.properties["org_id"]!])
                #expect(deal.amount == Decimal(string: source.properties["value"]!))
                if deal.stage == "won" || deal.stage == "lost" {
                    closed += 1
                    #expect(deal.closedAt == deal.stageHistory.last?.enteredAt)
                }
            }
            #expect(closed > 0)
            // Every stage the API lists is mapped.
            let mapped = Set(PipedriveCompany.stageIDs)
            #expect(Set(try await connector.stages().map(\.id)) == mapped)
        }
    }

    /// v2 (RFC 3339, plain integer ids) and v1 (`YYYY-MM-DD HH:MM:SS`, ids nested as `{"value": …}`,
    /// `user_id` for the owner) deals map to the same record.
    @Test func v1AndV2DealsDecodeToTheSameRecord() throws {
        let v2 = Data(#"""
            {"success": true, "data": [{"id": 213973, "title": "Acme", "owner_id": 8877, "value": 5000.5, "currency": "EUR",
              "person_id": 1101, "org_id": 5, "pipeline_id": 1, "stage_id": 2, "status": "open",
              "add_time": "2019-05-29T04:21:51Z", "update_time": "2019-11-28T16:19:50Z", "close_time": null,
              "visible_to": "3", "is_deleted": false, "custom_fields": {"gross_margin": 0.35, "notes": {"x": 1}}}],
             "additional_data": {"next_cursor": null}}
            """#.utf8)
        let v1 = Data(#"""
            {"success": true, "data": [{"id": 213973, "title": "Acme", "value": "5000.5", "currency": "EUR", "status": "open",
              "stage_id": 2, "pipeline_id": 1,
              "user_id": {"id": 8877, "name": "Owner", "email": "owner@example.com", "active_flag": true, "value": 8877},
              "person_id": {"active_flag": true, "name": "Person", "email": [{"value": "p@example.com", "primary": true}], "value": 1101},
              "org_id": {"name": "Org", "people_count": 2, "owner_id": 8877, "value": 5},
              "add_time": "2019-05-29 04:21:51", "update_time": "2019-11-28 16:19:50", "active": true, "deleted": false,
              "visible_to": "3"}],
             "additional_data": {"pagination": {"start": 0, "limit": 500, "more_items_in_collection": false}}}
            """#.utf8)
        let connector = PipedriveConnector(
            name: "pd", baseURL: "https://acme.pipedrive.com/api/v1/",
            http: CRMHTTPClient(connector: "pd", http: .shared, requestsPerSecond: 1, searchRequestsPerSecond: 1,
                                retry: RetryPolicy(), authorization: [], logger: Self.quiet),
            marginField: "gross_margin")
        #expect(connector.baseURL == "https://acme.pipedrive.com")
        var records: [CRMDeal] = []
        for body in [v2, v1] {
            let envelope = try JSONDecoder().decode(PipedriveWire.Envelope<[PipedriveWire.Deal]>.self, from: body)
            let deal = try #require(envelope.data?.first)
            let at = try #require(PipedriveConnector.stamp(deal.update_time))
            records.append(connector.deal(deal, at: at, history: []))
        }
        #expect(records[0].owner == "8877" && records[0].contactIDs == ["1101"] && records[0].accountIDs == ["5"])
        #expect(records[0].amount == Decimal(string: "5000.5"))
        #expect(records[0].grossMargin == Decimal(string: "0.35"))
        #expect(records[0].stageHistory == [StageChange(stage: "2", enteredAt: CRMTimestamp.parse("2019-05-29T04:21:51Z")!)])
        records[1].grossMargin = records[0].grossMargin
        #expect(records[0] == records[1])
    }

    @Test func rebuildingHandlesReopenedDealsAndSameSecondEdits() {
        let t0 = CRMTimestamp.parse("2026-07-01 09:00:00")!
        let t1 = CRMTimestamp.parse("2026-07-02 09:00:00")!
        let t2 = CRMTimestamp.parse("2026-07-03T09:00:00Z")!
        let t3 = CRMTimestamp.parse("2026-07-04 09:00:00")!
        #expect(t2 == CRMTimestamp.parse("2026-07-03 09:00:00"))
        let changes: [PipedriveStageHistory.Change] = [
            // Newest first, as the flow lists them.
            .init(field: "stage_id", old: "3", new: "4", at: t3, order: 6),
            .init(field: "stage_id", old: "2", new: "3", at: t2, order: 5),
            .init(field: "status", old: "won", new: "open", at: t2, order: 4),
            .init(field: "status", old: "open", new: "won", at: t1, order: 3),
        ]
        let history = PipedriveStageHistory.rebuild(addedAt: t0, stageID: "4", status: "open", changes: changes)
        #expect(history.map(\.stage) == ["2", "won", "3", "4"])
        #expect(history.map(\.enteredAt) == [t0, t1, t2, t3])
        let untouched = PipedriveStageHistory.rebuild(addedAt: t0, stageID: "1", status: "lost", changes: [])
        #expect(untouched == [StageChange(stage: "lost", enteredAt: t0)])
        // Some accounts log the creation as a change from nothing.
        let logged = PipedriveStageHistory.rebuild(addedAt: t0, stageID: "3", status: "open", changes: [
            .init(field: "stage_id", old: "2", new: "3", at: t1, order: 2),
            .init(field: "stage_id", old: nil, new: "2", at: t0, order: 1),
        ])
        #expect(logged == [StageChange(stage: "2", enteredAt: t0), StageChange(stage: "3", enteredAt: t1)])
    }

    @Test func injected429sAreRetriedAndEverythingIsStillRead() async throws {
        let data = PipedriveCompany.generate(seed: 7, deals: 15, now: Date())
        var faults = FaultSpec()
        faults.rateLimited = 0.3
        faults.retryAfterSeconds = nil   // Pipedrive's x-ratelimit-reset alone paces the retry
        let state = SimulatorState(data: data, faults: faults, seed: 7, rateLimit: (5_000, 5_000))
        try await withConnector(state, pageSize: 20, attempts: 12) { connector in
            let (pages, _) = try await readAll(connector, Self.deals)
            #expect(Set(pages.flatMap { $0.batch.deals.map(\.externalID) }).count == data.objects["deals"]!.values.filter { !$0.archived }.count)
            #expect(connector.http.stats.rateLimited > 0)
            #expect(connector.http.stats.retries >= connector.http.stats.rateLimited)
        }
    }

    /// The connector's default rate (8 requests/s) stays under the simulated account's limit: no 429 at all.
    @Test func thereAreNo429sInSteadyStateAtTheDefaultRate() async throws {
        let data = PipedriveCompany.generate(seed: 9, deals: 12, now: Date())
        let state = SimulatorState(data: data, seed: 9, rateLimit: (10, 10))
        try await withConnector(state, rate: 8) { connector in
            for stream in connector.streams { _ = try await readAll(connector, stream) }
            #expect(await state.log.filter { $0.status == 429 }.isEmpty)
            #expect(connector.http.stats.rateLimited == 0)
        }
    }

    /// The nurture engine's follow-up task: created with `POST /api/v1/activities`, recorded by the
    /// simulator and listed by the API like any other activity.
    @Test func aCreatedActivityIsRecordedAndListed() async throws {
        let data = PipedriveCompany.generate(seed: 8, deals: 20, now: Date())
        let state = SimulatorState(data: data, rateLimit: (5_000, 5_000))
        // One attempt, as the outbox uses it: a creation is never retried by the HTTP client, since
        // a lost answer would leave a second activity (the outbox retries, and says so).
        try await withConnector(state, attempts: 1) { connector in
            let due = CRMTimestamp.parse("2026-12-01T09:30:00Z")!
            let id = try await connector.createActivity(.init(
                subject: "Follow up: whitepaper download", type: "task", due: due, ownerID: "9001", dealID: "3", personID: "3",
                note: "Created by crm-sync nurture"))
            let created = await state.activitiesCreatedThroughAPI
            #expect(created.map { String($0.id) } == [id])
            #expect(created.first?.properties["subject"] == "Follow up: whitepaper download")
            let (pages, _) = try await readAll(connector, SyncStream("activities", .activities), anchor: Date().addingTimeInterval(-60))
            let activity = try #require(pages.flatMap(\.batch.activities).first { $0.externalID == id })
            #expect(activity.kind == .task)
            #expect(activity.occurredAt == due)
            #expect(activity.dealIDs == ["3"])
            #expect(activity.contactIDs == ["3"])
            #expect(activity.owner == "9001")
        }
    }
}
