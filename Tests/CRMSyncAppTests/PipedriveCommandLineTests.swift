import AsyncHTTPClient
import CRMSimulator
import CRMSyncTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

/// `crm-sync simulate crm --kind pipedrive` and `crm-sync sync` with a pipedrive connector, as
/// separate processes, the way a user runs them.
@Suite struct PipedriveCommandLineTests {
    static var binary: String { "\(TestDatabase.packageRoot)/.build/debug/crm-sync" }

    func process(_ arguments: [String], environment: [String: String] = [:]) -> (Process, Pipe, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: TestDatabase.packageRoot)
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = nil
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        return (process, out, err)
    }

    func run(_ arguments: [String], environment: [String: String]) async throws -> (status: Int32, output: String) {
        let (process, out, err) = process(arguments, environment: environment)
        try process.run()
        async let stdout = out.fileHandleForReading.readToEnd()
        async let stderr = err.fileHandleForReading.readToEnd()
        let (o, e) = try await (stdout, stderr)
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: (o ?? Data()) + (e ?? Data()), as: UTF8.self))
    }

    @Test func syncIntoPostgreSQLFromTheSimulatorProcess() async throws {
        let port = Int.random(in: 41_000...59_000)
        let (simulator, _, _) = process(["simulate", "crm", "--kind", "pipedrive", "--port", "\(port)", "--records", "150", "--rate", "400", "--seed", "21"])
        try simulator.run()
        defer { simulator.terminate() }
        let ready = try await eventually(every: .milliseconds(100)) {
            let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/_sim/health"), timeout: .seconds(5))
            return response?.status == .ok
        }
        try #require(ready, "the simulator did not come up on port \(port)")
        try await TestDatabase.with { client, url in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let config = folder.appendingPathComponent("crm-sync.yaml").path
            try """
                connectors:
                  - name: pipedrive-main
                    kind: pipedrive
                    base_url: http://127.0.0.1:\(port)
                    token_env: PIPEDRIVE_TOKEN
                    mapping: \(TestDatabase.packageRoot)/Mappings/pipedrive.yaml
                    requests_per_second: 300
                    max_attempts: 2
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let environment = ["DATABASE_URL": TestDatabase.text(url)]
            let denied = try await run(["sync", "--config", config], environment: environment.merging(["PIPEDRIVE_TOKEN": "wrong-secret"]) { $1 })
            #expect(denied.status != 0)
            #expect(denied.output.contains("pipedrive-main: authentication failed (unauthorized access)"), "\(denied.output)")
            #expect(!denied.output.contains("wrong-secret"))

            let synced = try await run(["sync", "--config", config], environment: environment.merging(["PIPEDRIVE_TOKEN": "sim-token"]) { $1 })
            #expect(synced.status == 0, "\(synced.output)")
            // The same seed gives the same company in this process.
            let company = PipedriveCompany.generate(seed: 21, deals: 150, now: Date())
            let open = company.objects["deals"]!.values.filter { !$0.archived }.count
            let deals = try await client.query("SELECT count(*)::int8 FROM crm.deals WHERE connector = 'pipedrive-main' AND NOT deleted", logger: TestDatabase.logger)
                .collect().first!.decode(Int64.self)
            #expect(deals == Int64(open))
            let unmapped = try await client.query("SELECT count(*)::int8 FROM crm.deals WHERE connector = 'pipedrive-main' AND canonical_stage IS NULL", logger: TestDatabase.logger)
                .collect().first!.decode(Int64.self)
            #expect(unmapped == 0)
        }
    }
}
