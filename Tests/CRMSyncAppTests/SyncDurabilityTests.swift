import AsyncHTTPClient
import CRMSimulator
import CRMSyncApp
import CRMSyncConfig
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// Crash safety and scale: the sync as a separate process killed with SIGKILL, and 50,000 deals.
@Suite struct SyncDurabilityTests {
    let support = SyncAgainstSimulatorTests()

    /// Starts `crm-sync sync` and kills it with SIGKILL after `delay`; returns whether it was
    /// still running when killed (false: it finished first).
    func syncProcess(config: String, database: DatabaseURL, killAfter delay: Duration?) async throws -> (killed: Bool, status: Int32) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
        process.arguments = ["sync", "--config", config]
        var environment = ProcessInfo.processInfo.environment
        environment["DATABASE_URL"] = TestDatabase.text(database)
        environment["HUBSPOT_TOKEN"] = "sim-token"
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        var killed = false
        if let delay {
            try await Task.sleep(for: delay)
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                killed = true
            }
        }
        while process.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        return (killed, process.terminationStatus)
    }

    @Test func killingTheSyncAtRandomPointsAndRerunningEndsInTheSameState() async throws {
        let data = SimulatedDataset.generate(seed: 21, deals: 4_000, now: Date())
        let state = SimulatorState(data: data, seed: 21, rateLimit: (5_000, 5_000))
        try await support.withSimulator(state) { port in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let config = folder.appendingPathComponent("crm-sync.yaml").path
            try """
                connectors:
                  - name: hs
                    kind: hubspot
                    base_url: http://127.0.0.1:\(port)
                    token_env: HUBSPOT_TOKEN
                    mapping: \(TestDatabase.packageRoot)/Mappings/hubspot.yaml
                    requests_per_second: 3000
                    search_requests_per_second: 3000
                    page_size: 100
                """.write(toFile: config, atomically: true, encoding: .utf8)
            try await TestDatabase.with { client, url in
                var generator = SeededRandom(seed: 99)
                var kills = 0
                for _ in 0..<5 {
                    let delay = Duration.milliseconds(Int64(150 + generator.next() % 1_200))
                    let run = try await syncProcess(config: config, database: url, killAfter: delay)
                    if run.killed { kills += 1 } else { #expect(run.status == 0) }
                }
                #expect(kills >= 2, "the sync finished before it could be killed; make it bigger")
                let final = try await syncProcess(config: config, database: url, killAfter: nil)
                #expect(final.status == 0)
                support.compare(await support.expected(state), try await support.actual(client))
                // Cursors are where an uninterrupted run puts them: a further run finds nothing new.
                let again = try await support.sync(try support.connectorConfig(port: port, rate: 3_000, searchRate: 3_000), client: client)
                #expect(again.stageChanges == 0)
            }
        }
    }

    @Test(.timeLimit(.minutes(25)))
    func fiftyThousandDealsCleanAndWithEveryFaultEndEqualToTheCRM() async throws {
        let data = SimulatedDataset.generate(seed: 50, deals: 50_000, now: Date())
        let state = SimulatorState(data: data, seed: 50, rateLimit: (20_000, 20_000))
        try await support.withSimulator(state) { port in
            let config = try support.connectorConfig(port: port, rate: 10_000, searchRate: 10_000, pageSize: 200, attempts: FaultRun.attempts)
            try await TestDatabase.with { client, _ in
                _ = try await support.sync(config, client: client)
                let expected = await support.expected(state)
                #expect(expected.deals.count > 49_000)
                support.compare(expected, try await support.actual(client))
            }
            var faults = FaultSpec.all
            faults.hangDuration = FaultRun.hangDuration
            await state.setFaults(faults)
            try await TestDatabase.with { client, _ in
                let faulty = try await support.sync(config, client: client, timeout: FaultRun.timeout)
                #expect(faulty.retries > 0)
                await state.setFaults(.none)
                _ = try await support.sync(config, client: client)
                support.compare(await support.expected(state), try await support.actual(client))
            }
        }
    }
}
