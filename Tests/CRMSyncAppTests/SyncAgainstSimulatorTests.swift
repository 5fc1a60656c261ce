import AsyncHTTPClient
import CRMSimulator
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

/// How the fault-injection syncs are timed, so that a busy machine (the suite beside
/// `stress-ng --cpu 2`) cannot turn a real answer into a failure: the client's timeout is far above
/// what a loaded loopback request takes, a hung response stalls well past that timeout, and the
/// retry budget leaves room for load-made timeouts on top of the injected faults.
enum FaultRun {
    static let timeout: Duration = .seconds(5)
    static let hangDuration: Duration = .seconds(12)
    static let attempts = 20
}

/// Syncs the simulator into a real database and compares the two, record by record.
@Suite struct SyncAgainstSimulatorTests {
    static let root = TestDatabase.packageRoot
    let logger = TestDatabase.logger

    func connectorConfig(port: Int, rate: Double, searchRate: Double, pageSize: Int = 200, attempts: Int = 10) throws -> ConnectorConfig {
        ConnectorConfig(
            name: "hs", kind: .hubspot, baseURL: "http://127.0.0.1:\(port)", token: "sim-token",
            mappingPath: "\(Self.root)/Mappings/hubspot.yaml",
            mapping: try MappingLoader.load(path: "\(Self.root)/Mappings/hubspot.yaml"),
            overlap: .seconds(300), requestsPerSecond: rate, searchRequestsPerSecond: searchRate, pageSize: pageSize,
            maxAttempts: attempts)
    }

    func withSimulator<T: Sendable>(_ state: SimulatorState, _ body: @Sendable (Int) async throws -> T) async throws -> T {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = SimulatorServer(kind: .hubspot, state: state).application(logger: logger, onRunning: { continuation.yield($0) })
        return try await withLocalServices([app], logger: logger) {
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

    /// What the simulator holds, in the shape the database should hold it.
    struct Snapshot: Equatable {
        var deals: [String: String] = [:]          // id → stage|amount|modified ms
        var history: [String: Set<String>] = [:]   // id → stage@ms
        var contacts: Set<String> = []
        var dealContacts: Set<String> = []
        var companies: Set<String> = []
    }

    func expected(_ state: SimulatorState) async -> Snapshot {
        let data = await state.data
        var snapshot = Snapshot()
        for deal in (data.objects["deals"] ?? [:]).values where !deal.archived {
            let id = "\(deal.id)"
            snapshot.deals[id] = "\(deal.properties["dealstage"]!)|\(deal.properties["amount"]!)|\(deal.updatedAt)"
            snapshot.history[id] = Set(deal.stageHistory.map { "\($0.0)@\($0.1)" })
            for contact in data.associations["deals->contacts"]?[deal.id] ?? [] { snapshot.dealContacts.insert("\(id)->\(contact)") }
        }
        snapshot.contacts = Set((data.objects["contacts"] ?? [:]).values.filter { !$0.archived }.map { "\($0.id)" })
        snapshot.companies = Set((data.objects["companies"] ?? [:]).values.filter { !$0.archived }.map { "\($0.id)" })
        return snapshot
    }

    func actual(_ client: PostgresClient) async throws -> Snapshot {
        var snapshot = Snapshot()
        for try await (id, stage, amount, modified) in try await client.query(
            "SELECT external_id, stage, amount::text, (extract(epoch FROM modified_at) * 1000)::int8 FROM crm.deals WHERE NOT deleted",
            logger: logger
        ).decode((String, String, String, Int64).self) {
            snapshot.deals[id] = "\(stage)|\(amount)|\(modified)"
        }
        for try await (id, stage, at) in try await client.query(
            """
            SELECT h.deal_external_id, h.stage, (extract(epoch FROM h.entered_at) * 1000)::int8 FROM crm.stage_history h
              JOIN crm.deals d ON d.connector = h.connector AND d.external_id = h.deal_external_id AND NOT d.deleted
            """, logger: logger
        ).decode((String, String, Int64).self) {
            snapshot.history[id, default: []].insert("\(stage)@\(at)")
        }
        for try await (deal, contact) in try await client.query(
            """
            SELECT dc.deal_external_id, dc.contact_external_id FROM crm.deal_contacts dc
              JOIN crm.deals d ON d.connector = dc.connector AND d.external_id = dc.deal_external_id AND NOT d.deleted
            """, logger: logger
        ).decode((String, String).self) {
            snapshot.dealContacts.insert("\(deal)->\(contact)")
        }
        snapshot.contacts = Set(try await client.query("SELECT external_id FROM crm.contacts WHERE NOT deleted", logger: logger).collect().map { try $0.decode(String.self) })
        snapshot.companies = Set(try await client.query("SELECT external_id FROM crm.accounts WHERE NOT deleted", logger: logger).collect().map { try $0.decode(String.self) })
        return snapshot
    }

    func compare(_ expected: Snapshot, _ actual: Snapshot) {
        #expect(actual.deals.count == expected.deals.count, "deal count")
        let wrongDeals = expected.deals.filter { actual.deals[$0.key] != $0.value }.map(\.key).sorted()
        #expect(wrongDeals.isEmpty, "\(wrongDeals.count) deals missing or different, e.g. \(wrongDeals.prefix(3).map { "\($0): CRM \(expected.deals[$0] ?? "-") vs DB \(actual.deals[$0] ?? "-")" })")
        #expect(Set(actual.deals.keys).subtracting(expected.deals.keys).isEmpty, "deals the CRM does not have")
        let wrongHistory = expected.history.filter { actual.history[$0.key] != $0.value }.map(\.key).sorted()
        #expect(wrongHistory.isEmpty, "\(wrongHistory.count) stage histories different, e.g. \(wrongHistory.prefix(2).map { "\($0): CRM \(expected.history[$0]!.sorted()) vs DB \((actual.history[$0] ?? []).sorted())" })")
        #expect(actual.contacts == expected.contacts, "contacts: \(expected.contacts.subtracting(actual.contacts).count) missing, \(actual.contacts.subtracting(expected.contacts).count) extra")
        #expect(actual.companies == expected.companies, "companies: \(expected.companies.subtracting(actual.companies).count) missing, \(actual.companies.subtracting(expected.companies).count) extra")
        #expect(actual.dealContacts == expected.dealContacts, "deal contacts: \(expected.dealContacts.subtracting(actual.dealContacts).count) missing, \(actual.dealContacts.subtracting(expected.dealContacts).count) extra")
    }

    @Test func aCleanSyncEqualsTheCRMAndASecondRunChangesNothing() async throws {
        let data = SimulatedDataset.generate(seed: 5, deals: 3_000, now: Date())
        let state = SimulatorState(data: data, seed: 5, rateLimit: (2_000, 1_000))
        try await TestDatabase.with { client, _ in
            try await withSimulator(state) { port in
                let config = try connectorConfig(port: port, rate: 1_500, searchRate: 800)
                let first = try await sync(config, client: client)
                #expect(first.requests > 0)
                compare(await expected(state), try await actual(client))
                let historyRows = try await client.query("SELECT count(*)::int8 FROM crm.stage_history", logger: logger).collect().first!.decode(Int64.self)
                _ = try await sync(config, client: client)
                let again = try await client.query("SELECT count(*)::int8 FROM crm.stage_history", logger: logger).collect().first!.decode(Int64.self)
                #expect(again == historyRows, "a re-run adds no history rows")
                compare(await expected(state), try await actual(client))
            }
        }
    }

    @Test func everyFaultKindOnStillEndsEqualToTheCRM() async throws {
        let data = SimulatedDataset.generate(seed: 9, deals: 2_000, now: Date())
        var faults = FaultSpec.all
        faults.hangDuration = FaultRun.hangDuration
        let state = SimulatorState(data: data, faults: faults, seed: 9, rateLimit: (2_000, 1_000))
        try await TestDatabase.with { client, _ in
            try await withSimulator(state) { port in
                // Small pages so faults hit many requests; hung responses time out and are retried.
                let config = try connectorConfig(port: port, rate: 1_500, searchRate: 800, pageSize: 50, attempts: FaultRun.attempts)
                let faulty = try await sync(config, client: client, timeout: FaultRun.timeout)
                #expect(faulty.retries > 0)
                // Salespeople stop editing; the next incremental run catches up with what changed during the first.
                await state.setFaults(.none)
                _ = try await sync(config, client: client)
                compare(await expected(state), try await actual(client))
            }
        }
    }

    @Test func thereAreNo429sInSteadyStateAndInjectedOnesAreRetried() async throws {
        let data = SimulatedDataset.generate(seed: 2, deals: 150, now: Date())
        // The simulated account enforces HubSpot-like limits; the connector's defaults stay under them.
        let state = SimulatorState(data: data, seed: 2, rateLimit: (10, 5))
        try await TestDatabase.with { client, _ in
            try await withSimulator(state) { port in
                var config = try connectorConfig(port: port, rate: 9, searchRate: 4, pageSize: 100)
                config.requestsPerSecond = CRMKind.hubspot.defaultRequestsPerSecond
                config.searchRequestsPerSecond = CRMKind.hubspot.defaultSearchRequestsPerSecond
                let steady = try await sync(config, client: client, full: true)
                let log = await state.log
                #expect(!log.isEmpty)
                #expect(log.filter { $0.status == 429 }.isEmpty, "429s in steady state: \(log.filter { $0.status == 429 }.count)")
                #expect(steady.rateLimited == 0)

                var faults = FaultSpec()
                faults.rateLimited = 0.3
                faults.retryAfterSeconds = 1
                await state.setFaults(faults)
                await state.clearLog()
                let limited = try await sync(config, client: client, full: true)
                #expect(limited.rateLimited > 0)
                #expect(limited.retries >= limited.rateLimited)
                compare(await expected(state), try await actual(client))
            }
        }
    }

    @Test func fullSyncMarksRecordsTheCRMNoLongerHasAsDeleted() async throws {
        let data = SimulatedDataset.generate(seed: 4, deals: 100, now: Date())
        let state = SimulatorState(data: data, seed: 4, rateLimit: (2_000, 1_000))
        try await TestDatabase.with { client, _ in
            try await withSimulator(state) { port in
                let config = try connectorConfig(port: port, rate: 1_000, searchRate: 500)
                _ = try await sync(config, client: client)
                // A deal the CRM hard-deleted (no archive entry): only a full sweep can notice.
                try await client.query(
                    "INSERT INTO crm.deals (connector, external_id, stage, modified_at) VALUES ('hs', 'ghost', 'closedwon', now() - interval '1 day')",
                    logger: logger)
                let summary = try await sync(config, client: client, full: true)
                #expect(summary.deletions >= 1)
                let ghost = try await client.query("SELECT deleted FROM crm.deals WHERE external_id = 'ghost'", logger: logger).collect().first!.decode(Bool.self)
                #expect(ghost)
                compare(await expected(state), try await actual(client))
            }
        }
    }
}
