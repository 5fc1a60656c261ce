import AsyncHTTPClient
import CRMSyncApp
import CRMSyncConfig
import CRMSyncConnectors
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

@testable import CRMSimulator

/// Syncs a simulated Salesforce org into a real database and compares the whole database with
/// the org, as the simulator itself renders it.
@Suite struct SalesforceSyncTests {
    static let root = TestDatabase.packageRoot
    let logger = TestDatabase.logger

    static func config(port: Int, pageSize: Int = 200, attempts: Int = 10) throws -> ConnectorConfig {
        ConnectorConfig(
            name: "sf", kind: .salesforce, baseURL: "http://127.0.0.1:\(port)", token: "sim-token",
            mappingPath: "\(root)/Mappings/salesforce.yaml",
            mapping: try MappingLoader.load(path: "\(root)/Mappings/salesforce.yaml"),
            overlap: .seconds(300), requestsPerSecond: 2_000, pageSize: pageSize, maxAttempts: attempts)
    }

    static func withSimulator<T: Sendable>(_ state: SimulatorState, _ body: @Sendable (Int) async throws -> T) async throws -> T {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = SimulatorServer(kind: .salesforce, state: state).application(
            logger: TestDatabase.logger, onRunning: { continuation.yield($0) })
        return try await withLocalServices([app], logger: TestDatabase.logger) {
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            return try await body(port)
        }
    }

    func sync(_ config: ConnectorConfig, client: PostgresClient, full: Bool = false, timeout: Duration = .seconds(30)) async throws -> SyncEngine.Summary {
        try await HTTPClient.shared.withConnector(config, logger: logger, timeout: timeout) { crm in
            try await SyncEngine(config: config, connector: crm, client: client, logger: logger).run(full: full)
        }
    }

    /// Everything the sync writes, as comparable text.
    struct Snapshot: Equatable {
        var owners: [String: String] = [:]
        var accounts: [String: String] = [:]
        var contacts: [String: String] = [:]
        var deals: [String: String] = [:]          // id → stage|amount|modified ms|account
        var history: [String: Set<String>] = [:]   // id → stage@ms
        var dealContacts: Set<String> = []
        var activities: [String: String] = [:]     // id → kind|occurred ms|contact|deal
        var campaigns: [String: String] = [:]      // name → actual|budgeted|currency|crm cost
        var members: Set<String> = []              // touch key → campaign|contact|ms
    }

    static func text(_ value: SFValue) -> String {
        switch value {
        case .null: ""
        case .string(let text): text
        case .number(let number): "\(number)"
        case .bool(let flag): "\(flag)"
        case .dateTime(let ms), .date(let ms): "\(ms)"
        }
    }

    static func expected(_ state: SimulatorState) async -> Snapshot {
        let org = SalesforceOrg(data: await state.data)
        func live(_ object: String) -> [SObjectRow] { org.rows(object).filter { $0["IsDeleted"] != .bool(true) } }
        var s = Snapshot()
        for row in live("User") { s.owners[row.id] = "\(text(row["Name"]))|\(text(row["Email"]))" }
        for row in live("Account") { s.accounts[row.id] = "\(text(row["Name"]))|\(text(row["Website"]))|\(text(row["OwnerId"]))" }
        for row in live("Contact") { s.contacts[row.id] = "\(text(row["Email"]))|\(text(row["AccountId"]))|\(text(row["OwnerId"]))" }
        for row in live("Opportunity") {
            s.deals[row.id] = [row["StageName"], row["Amount"], row["SystemModstamp"], row["AccountId"]].map(text).joined(separator: "|")
        }
        for row in live("OpportunityHistory") {
            s.history[text(row["OpportunityId"]), default: []].insert("\(text(row["StageName"]))@\(text(row["CreatedDate"]))")
        }
        for row in live("OpportunityContactRole") { s.dealContacts.insert("\(text(row["OpportunityId"]))->\(text(row["ContactId"]))") }
        for row in live("Task") {
            let kind = ["Call": "call", "Email": "email"][text(row["TaskSubtype"])] ?? "task"
            let at = row["CompletedDateTime"] != .null ? row["CompletedDateTime"] : row["ActivityDate"]
            s.activities[row.id] = [kind, text(at), text(row["WhoId"]), text(row["WhatId"])].joined(separator: "|")
        }
        for row in live("Event") {
            s.activities[row.id] = ["meeting", text(row["StartDateTime"]), text(row["WhoId"]), text(row["WhatId"])].joined(separator: "|")
        }
        var names: [String: String] = [:]
        for row in live("Campaign") {
            names[row.id] = text(row["Name"])
            s.campaigns[text(row["Name"])] = [row["ActualCost"], row["BudgetedCost"], row["CurrencyIsoCode"], row["ActualCost"]]
                .map(text).joined(separator: "|")
        }
        for row in live("CampaignMember") {
            s.members.insert("sf:\(row.id)|\(names[text(row["CampaignId"])] ?? "")|\(text(row["ContactId"]))|\(text(row["CreatedDate"]))")
        }
        return s
    }

    func actual(_ client: PostgresClient) async throws -> Snapshot {
        var s = Snapshot()
        func rows(_ sql: String) async throws -> [[String]] {
            var result: [[String]] = []
            for try await row in try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger) {
                result.append(try row.map { cell in try cell.decode(String?.self) ?? "" })
            }
            return result
        }
        let ms = { (column: String) in "(extract(epoch FROM \(column)) * 1000)::int8::text" }
        for r in try await rows("SELECT external_id, name, email FROM crm.owners WHERE connector = 'sf' AND NOT deleted") {
            s.owners[r[0]] = "\(r[1])|\(r[2])"
        }
        for r in try await rows("SELECT external_id, name, domain, owner FROM crm.accounts WHERE connector = 'sf' AND NOT deleted") {
            s.accounts[r[0]] = "\(r[1])|\(r[2])|\(r[3])"
        }
        for r in try await rows("SELECT external_id, email, account_external_id, owner FROM crm.contacts WHERE connector = 'sf' AND NOT deleted") {
            s.contacts[r[0]] = "\(r[1])|\(r[2])|\(r[3])"
        }
        for r in try await rows("""
            SELECT d.external_id, d.stage, d.amount::text, \(ms("d.modified_at")),
                   (SELECT string_agg(a.account_external_id, ',') FROM crm.deal_accounts a
                     WHERE a.connector = d.connector AND a.deal_external_id = d.external_id)
              FROM crm.deals d WHERE d.connector = 'sf' AND NOT d.deleted
            """) {
            s.deals[r[0]] = r[1...4].joined(separator: "|")
        }
        for r in try await rows("""
            SELECT h.deal_external_id, h.stage, \(ms("h.entered_at")) FROM crm.stage_history h
              JOIN crm.deals d ON d.connector = h.connector AND d.external_id = h.deal_external_id AND NOT d.deleted
             WHERE h.connector = 'sf'
            """) {
            s.history[r[0], default: []].insert("\(r[1])@\(r[2])")
        }
        for r in try await rows("""
            SELECT dc.deal_external_id, dc.contact_external_id FROM crm.deal_contacts dc
              JOIN crm.deals d ON d.connector = dc.connector AND d.external_id = dc.deal_external_id AND NOT d.deleted
             WHERE dc.connector = 'sf'
            """) {
            s.dealContacts.insert("\(r[0])->\(r[1])")
        }
        for r in try await rows("""
            SELECT external_id, kind, \(ms("occurred_at")), coalesce(contact_external_ids[1], ''), coalesce(deal_external_ids[1], '')
              FROM crm.activities WHERE connector = 'sf' AND NOT deleted
            """) {
            s.activities[r[0]] = r[1...4].joined(separator: "|")
        }
        for r in try await rows("""
            SELECT k.campaign, k.actual_cost::text, k.budgeted_cost::text, k.currency,
                   (SELECT string_agg(c.amount::text, ',') FROM crm.campaign_costs c WHERE c.campaign = k.campaign AND c.source = 'crm')
              FROM crm.campaigns k WHERE k.connector = 'sf' AND NOT k.deleted
            """) {
            s.campaigns[r[0]] = r[1...4].joined(separator: "|")
        }
        for r in try await rows("""
            SELECT touch_key, campaign, contact_external_id, \(ms("occurred_at")) FROM crm.touches
             WHERE connector = 'sf' AND kind = 'campaign.member'
            """) {
            s.members.insert(r.joined(separator: "|"))
        }
        return s
    }

    func compare(_ expected: Snapshot, _ actual: Snapshot, sourceLocation: SourceLocation = #_sourceLocation) {
        func check<V: Equatable>(_ name: String, _ e: [String: V], _ a: [String: V]) {
            let missing = e.keys.filter { a[$0] == nil }.sorted()
            let extra = a.keys.filter { e[$0] == nil }.sorted()
            let different = e.keys.filter { a[$0] != nil && a[$0] != e[$0] }.sorted()
            #expect(missing.isEmpty && extra.isEmpty && different.isEmpty,
                    "\(name): \(e.count) in the org, \(missing.count) missing, \(extra.count) extra, \(different.count) different, e.g. \(different.prefix(2).map { "\($0): org \(e[$0]!) vs DB \(a[$0]!)" }) \(missing.prefix(2)) \(extra.prefix(2))",
                    sourceLocation: sourceLocation)
        }
        check("owners", expected.owners, actual.owners)
        check("accounts", expected.accounts, actual.accounts)
        check("contacts", expected.contacts, actual.contacts)
        check("deals", expected.deals, actual.deals)
        check("stage history", expected.history, actual.history)
        check("activities", expected.activities, actual.activities)
        check("campaigns", expected.campaigns, actual.campaigns)
        #expect(actual.dealContacts == expected.dealContacts,
                "deal contacts: \(expected.dealContacts.subtracting(actual.dealContacts).count) missing, \(actual.dealContacts.subtracting(expected.dealContacts).count) extra",
                sourceLocation: sourceLocation)
        #expect(actual.members == expected.members,
                "campaign members: \(expected.members.subtracting(actual.members).count) missing, \(actual.members.subtracting(expected.members).count) extra, e.g. \(expected.members.subtracting(actual.members).prefix(2))",
                sourceLocation: sourceLocation)
    }

    func count(_ sql: String, _ client: PostgresClient) async throws -> Int64 {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect().first!.decode(Int64.self)
    }

    /// Salespeople at work between two runs: stage changes, and opportunities and calls deleted a
    /// minute ago.
    static func mutate(_ state: SimulatorState) async -> [Int] {
        for _ in 0..<40 { await state.mutateRandomDeal(backdated: false) }
        let now = Date()
        let deals = await state.records("deals")
        let deleted = deals.values.filter { !$0.archived && $0.updatedAt < CRMTimestamp.millis(now) - 600_000 }
            .map(\.id).sorted().prefix(7)
        for id in deleted { await state.delete("deals", id: id, at: now.addingTimeInterval(-60)) }
        for id in (await state.records("calls")).keys.sorted().prefix(3) { await state.delete("calls", id: id, at: now.addingTimeInterval(-60)) }
        return Array(deleted)
    }

    @Test func aSyncEqualsTheOrgAndAnIncrementalRunAfterChangesCatchesUp() async throws {
        let data = SimulatedDataset.generate(seed: 11, deals: 3_000, now: Date())
        let state = SimulatorState(data: data, seed: 11, rateLimit: (5_000, 5_000))
        try await TestDatabase.with { client, _ in
            try await Self.withSimulator(state) { port in
                let config = try Self.config(port: port)
                let first = try await sync(config, client: client)
                #expect(first.requests > 0)
                #expect(first.unmappedStages.isEmpty, "unmapped: \(first.unmappedStages)")
                compare(await Self.expected(state), try await actual(client))
                // The org's active stage picklist, in its order, each with the mapping's stage.
                let stages = try await client.query(
                    """
                    SELECT stage, canonical_stage, sales_owned FROM reporting.pipeline_stages
                     WHERE connector = 'sf' ORDER BY display_order
                    """, logger: logger
                ).collect().map { try $0.decode((String, String?, Bool).self) }
                #expect(stages.map(\.0) == ["Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
                                           "Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Recycled",
                                           "Closed Won", "Closed Lost"], "inactive stages are not listed")
                #expect(stages.first { $0.0 == "Negotiation/Review" }.map { "\($0.1 ?? "-") \($0.2)" } == "negotiation true")
                #expect(stages.first { $0.0 == "Closed Lost" }.map { "\($0.1 ?? "-") \($0.2)" } == "closed_lost false")
                let historyRows = try await count("SELECT count(*)::int8 FROM crm.stage_history", client)

                let quiet = try await sync(config, client: client)
                #expect(try await count("SELECT count(*)::int8 FROM crm.stage_history", client) == historyRows, "a re-run adds no history rows")
                #expect(quiet.deletions == 0)

                let deleted = await Self.mutate(state)
                let second = try await sync(config, client: client)
                #expect(second.deletions >= deleted.count)
                compare(await Self.expected(state), try await actual(client))
                let marked = try await count(
                    "SELECT count(*)::int8 FROM crm.deals WHERE deleted AND external_id = ANY('{\(deleted.map { SalesforceID.make(SalesforceID.opportunity, $0) }.joined(separator: ","))}')",
                    client)
                #expect(marked == Int64(deleted.count))
            }
        }
    }

    @Test func everyFaultKindOnStillEndsEqualToTheOrg() async throws {
        let data = SimulatedDataset.generate(seed: 12, deals: 2_000, now: Date())
        var faults = FaultSpec.all
        faults.hangDuration = FaultRun.hangDuration
        // Salesforce pages are large (200 at the least), so a run makes few requests: raise the
        // odds enough that every kind of fault happens in one run.
        faults.rateLimited = 0.08
        faults.truncate = 0.05
        let state = SimulatorState(data: data, faults: faults, seed: 12, rateLimit: (5_000, 5_000))
        try await TestDatabase.with { client, _ in
            try await Self.withSimulator(state) { port in
                let config = try Self.config(port: port, attempts: FaultRun.attempts)
                let faulty = try await sync(config, client: client, timeout: FaultRun.timeout)
                #expect(faulty.retries > 0)
                let log = await state.log
                #expect(log.contains { $0.status == 403 }, "Salesforce answers throttling with 403 REQUEST_LIMIT_EXCEEDED; statuses: \(Dictionary(grouping: log, by: \.status).mapValues(\.count))")
                #expect(!log.contains { $0.status == 429 })
                // Salespeople stop editing and faults stop; the next incremental run catches up.
                await state.setFaults(.none)
                _ = await Self.mutate(state)
                _ = try await sync(config, client: client)
                compare(await Self.expected(state), try await actual(client))
            }
        }
    }

    /// The org's daily request quota runs out part way: the run stops with one line, what was
    /// committed stays, and the next run (a new day) resumes from the cursors and ends equal.
    @Test func anExhaustedDailyQuotaStopsTheRunAndTheNextRunResumes() async throws {
        let data = SimulatedDataset.generate(seed: 13, deals: 600, now: Date())
        let state = SimulatorState(data: data, seed: 13, rateLimit: (5_000, 5_000))
        await state.setDailyRequestLimit(9)
        try await TestDatabase.with { client, _ in
            try await Self.withSimulator(state) { port in
                let config = try Self.config(port: port)
                do {
                    _ = try await sync(config, client: client)
                    Issue.record("the sync should have stopped at the quota")
                } catch let error as ConnectorError {
                    guard case .quotaExhausted(let connector, let message) = error else {
                        Issue.record("expected quotaExhausted, got \(error)")
                        return
                    }
                    #expect(connector == "sf")
                    #expect(message.contains("REQUEST_LIMIT_EXCEEDED: TotalRequests Limit exceeded."))
                    #expect(!error.description.contains("\n"))
                }
                #expect(await state.log.filter { $0.status == 403 }.count == 1, "no retries against an exhausted quota")
                let saved = try await count("SELECT count(*)::int8 FROM crm.sync_cursors WHERE connector = 'sf' AND modified_at IS NOT NULL", client)
                #expect(saved > 0, "streams read before the quota ran out keep their cursors")

                await state.setDailyRequestLimit(nil)
                await state.startNewDay()
                _ = try await sync(config, client: client)
                compare(await Self.expected(state), try await actual(client))
                // Both runs are on record for SQL users and every replica's gauges.
                let runs = try await client.query(
                    "SELECT status, error, records, replica IS NOT NULL FROM reporting.sync_runs WHERE connector = 'sf' ORDER BY started_at",
                    logger: logger
                ).collect().map { try $0.decode((String, String?, Int64, Bool).self) }
                #expect(runs.map(\.0) == ["failed", "succeeded"], "\(runs)")
                #expect(runs.first?.1?.contains("REQUEST_LIMIT_EXCEEDED") == true, "\(runs)")
                #expect((runs.last?.2 ?? 0) > 0 && runs.allSatisfy(\.3), "\(runs)")
            }
        }
    }

    /// With `--full`, rows the org no longer returns at all (hard-deleted, emptied from the
    /// recycle bin) are marked deleted.
    @Test func aFullSyncMarksRecordsTheOrgNoLongerHasAsDeleted() async throws {
        let data = SimulatedDataset.generate(seed: 14, deals: 200, now: Date())
        let state = SimulatorState(data: data, seed: 14, rateLimit: (5_000, 5_000))
        try await TestDatabase.with { client, _ in
            try await Self.withSimulator(state) { port in
                let config = try Self.config(port: port)
                _ = try await sync(config, client: client)
                try await client.query(
                    "INSERT INTO crm.deals (connector, external_id, stage, modified_at) VALUES ('sf', '0065g0000009999ZZZ', 'Closed Won', now() - interval '1 day')",
                    logger: logger)
                let summary = try await sync(config, client: client, full: true)
                #expect(summary.deletions >= 1)
                #expect(try await count("SELECT count(*)::int8 FROM crm.deals WHERE external_id = '0065g0000009999ZZZ' AND deleted", client) == 1)
                compare(await Self.expected(state), try await actual(client))
            }
        }
    }

    /// `crm-sync sync` with a salesforce connector in the YAML config, as a user runs it.
    @Test func theCommandLineSyncsASalesforceConnectorFromTheConfig() async throws {
        let data = SimulatedDataset.generate(seed: 15, deals: 300, now: Date())
        let state = SimulatorState(data: data, seed: 15, rateLimit: (5_000, 5_000))
        let cli = CommandLineTests()
        let binary = CommandLineTests.binary
        try await TestDatabase.with { client, url in
            try await Self.withSimulator(state) { port in
                let config = try cli.temporaryFile("crm-sync.yaml", """
                    database_url: \(TestDatabase.text(url))
                    connectors:
                      - name: sf
                        kind: salesforce
                        base_url: http://127.0.0.1:\(port)
                        token_env: SF_TEST_TOKEN
                        mapping: \(Self.root)/Mappings/salesforce.yaml
                        poll_interval: 5m
                    """)
                let synced = try await ChildProcess.run(binary, ["sync", "--once", "--config", config],
                                                        environment: ["SF_TEST_TOKEN": "sim-token"], directory: Self.root)
                #expect(synced.status == 0, "stderr: \(synced.stderr)")
                #expect(synced.stderr.contains("sf: "), "a summary line: \(synced.stderr)")
                compare(await Self.expected(state), try await actual(client))

                let refused = try await ChildProcess.run(binary, ["sync", "--once", "--config", config],
                                                         environment: ["SF_TEST_TOKEN": "expired"], directory: Self.root)
                #expect(refused.status != 0)
                let lines = refused.stderr.split(separator: "\n")
                #expect(lines.count == 1, "stderr: \(refused.stderr)")
                // (the stage picklist is the first thing a run reads)
                #expect(lines.last?.contains("sf: authentication failed (query OpportunityStage: INVALID_SESSION_ID: Session expired or invalid)") == true,
                        "stderr: \(refused.stderr)")
            }
        }
    }
}
