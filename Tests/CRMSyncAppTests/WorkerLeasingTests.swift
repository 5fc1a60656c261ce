import CRMSimulator
import CRMSyncApp
import CRMSyncConfig
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// Several workers (`serve` schedulers) on one database share the connectors through leases in
/// PostgreSQL: each connector is synced once per round, and a job whose holder died is taken over
/// once its lease expires.
@Suite struct WorkerLeasingTests {
    let support = SyncAgainstSimulatorTests()
    let logger = TestDatabase.logger

    func connectors(_ count: Int, port: Int) throws -> [ConnectorConfig] {
        try (1...count).map { n in
            var config = try support.connectorConfig(port: port, rate: 2_000, searchRate: 1_000, pageSize: 100)
            config.name = String(format: "c%02d", n)
            config.pollInterval = .seconds(3_600)   // one round during the test
            return config
        }
    }

    func searches(_ state: SimulatorState) async -> Int {
        await state.log.filter { $0.path.hasSuffix("/search") && $0.status == 200 }.count
    }

    /// Runs `workers` schedulers until `done` holds (checked every 200 ms), then stops them.
    func runWorkers(_ workers: Int, runtime: Runtime, client: PostgresClient, lease: Duration,
                    until done: @escaping @Sendable () async throws -> Bool) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<workers {
                group.addTask {
                    try await Scheduler(runtime: runtime, client: client, inboxInterval: .seconds(3_600),
                                        attributionInterval: .seconds(3_600), leaseTime: lease, worker: "worker-\(worker)").run()
                }
            }
            // A generous bound for a busy machine: it fails with a line instead of waiting forever.
            let deadline = ContinuousClock.now + .seconds(300)
            while try await !done() {
                guard ContinuousClock.now < deadline else {
                    Issue.record("the workers did not finish their jobs within 300 s")
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            group.cancelAll()
        }
    }

    @Test func fourWorkersSyncTwentyConnectorsExactlyOnceEach() async throws {
        let data = SimulatedDataset.generate(seed: 44, deals: 300, now: Date())
        // What one connector's sync asks of the CRM, alone.
        let alone = SimulatorState(data: data, seed: 44, rateLimit: (100_000, 100_000))
        try await TestDatabase.with { client, _ in
            try await support.withSimulator(alone) { port in
                _ = try await support.sync(try connectors(1, port: port)[0], client: client)
            }
        }
        let perConnector = await searches(alone)
        #expect(perConnector > 5)

        let state = SimulatorState(data: data, seed: 44, rateLimit: (100_000, 100_000))
        try await TestDatabase.with { client, _ in
            try await support.withSimulator(state) { port in
                let runtime = Runtime(config: AppConfig(connectors: try connectors(20, port: port)), logger: logger)
                // A lease long enough that a loaded machine cannot miss a renewal (the dead-worker test uses a short one).
                try await runWorkers(4, runtime: runtime, client: client, lease: .seconds(20)) {
                    try await client.query("SELECT count(*)::int8 FROM crm.work_leases WHERE job LIKE 'sync:%' AND finished_at IS NOT NULL",
                                           logger: logger).collect().first!.decode(Int64.self) == 20
                }
            }
            let rounds = try await client.query("SELECT job, runs, finished_at IS NOT NULL FROM crm.work_leases WHERE job LIKE 'sync:%'", logger: logger)
                .collect().map { try $0.decode((String, Int64, Bool).self) }
            #expect(rounds.count == 20)
            #expect(rounds.allSatisfy { $0.1 == 1 && $0.2 }, "each connector synced once: \(rounds.filter { $0.1 != 1 })")
            // No page was fetched twice: twenty connectors asked exactly twenty times what one asks.
            #expect(await searches(state) == 20 * perConnector)
            let deals = try await client.query("SELECT connector, count(*)::int8 FROM crm.deals WHERE NOT deleted GROUP BY connector", logger: logger)
                .collect().map { try $0.decode((String, Int64).self) }
            #expect(deals.count == 20)
            #expect(Set(deals.map(\.1)).count == 1, "every connector holds the same deals: \(deals)")
        }
    }

    @Test func aDeadWorkersJobIsTakenOverWhenItsLeaseExpires() async throws {
        let data = SimulatedDataset.generate(seed: 45, deals: 100, now: Date())
        let state = SimulatorState(data: data, seed: 45, rateLimit: (100_000, 100_000))
        try await TestDatabase.with { client, _ in
            try await support.withSimulator(state) { port in
                // A worker claimed c01 and died mid-sync: its lease row stays, nobody renews it.
                let deadUntil = try await client.query("""
                    INSERT INTO crm.work_leases (job, holder, expires_at, acquired_at, runs)
                    VALUES ('sync:c01', 'dead-worker', clock_timestamp() + interval '4 seconds', now(), 1)
                    RETURNING expires_at
                    """, logger: logger).collect().first!.decode(Date.self)
                let runtime = Runtime(config: AppConfig(connectors: try connectors(1, port: port)), logger: logger)
                // The takers' own lease is long enough that a loaded machine cannot miss a renewal
                // (a 3 s lease was lost under stress-ng and the job taken a third time).
                try await runWorkers(2, runtime: runtime, client: client, lease: .seconds(15)) {
                    try await client.query("SELECT count(*)::int8 FROM crm.work_leases WHERE job = 'sync:c01' AND finished_at IS NOT NULL",
                                           logger: logger).collect().first!.decode(Int64.self) == 1
                }
                let (runs, holder, takenAt) = try await client.query(
                    "SELECT runs, holder, acquired_at FROM crm.work_leases WHERE job = 'sync:c01'", logger: logger
                ).collect().first!.decode((Int64, String?, Date).self)
                #expect(runs == 2, "taken over once")
                #expect(holder == nil, "and finished")
                // Ordered by the database's own clock, not the test's wall time: not before the
                // dead worker's lease ran out (how long after depends on the machine's load).
                #expect(takenAt >= deadUntil, "taken over at \(takenAt), before the dead lease ran out at \(deadUntil)")
                let deals = try await client.query("SELECT count(*)::int8 FROM crm.deals WHERE connector = 'c01' AND NOT deleted", logger: logger)
                    .collect().first!.decode(Int64.self)
                #expect(deals == Int64(data.objects["deals"]!.values.filter { !$0.archived }.count))
            }
        }
    }
}
