import CRMSimulator
import CRMSyncApp
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Testing

/// The `crm-sync` executable as a user meets it: exit codes and the one line on stderr.
@Suite struct CommandLineTests {
    struct Run: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static var binary: String { "\(TestDatabase.packageRoot)/.build/debug/crm-sync" }

    func run(_ arguments: [String], environment: [String: String] = [:]) async throws -> Run {
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
        try process.run()
        async let stdout = out.fileHandleForReading.readToEnd()
        async let stderr = err.fileHandleForReading.readToEnd()
        let (o, e) = try await (stdout, stderr)
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: o ?? Data(), as: UTF8.self),
                   stderr: String(decoding: e ?? Data(), as: UTF8.self))
    }

    func temporaryFile(_ name: String, _ text: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent(name).path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func aConfigWithAnUnknownKeyExitsNonZeroWithOneLineNamingFileAndKey() async throws {
        let path = try temporaryFile("crm-sync.yaml", """
            connectors:
              - name: hubspot-main
                kind: hubspot
                base_url: https://api.hubapi.com
                token_env: HUBSPOT_TOKEN
                mapping: \(TestDatabase.packageRoot)/Mappings/hubspot.yaml
                pol_interval: 5m
            """)
        let result = try await run(["migrate", "--config", path], environment: ["HUBSPOT_TOKEN": "pat-123"])
        #expect(result.status != 0)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(result.stderr)")
        #expect(lines.first?.contains("\(path):7: connectors[0].pol_interval: unknown key") == true, "\(result.stderr)")
        #expect(!result.stderr.contains("pat-123"))
    }

    /// The global options work before the verb as well as after it (issue 12 part 3): users,
    /// scripts and the compose file write them both ways.
    @Test func globalOptionsWorkBeforeAndAfterTheVerb() async throws {
        try await TestDatabase.with(migrate: false) { _, url in
            let path = try temporaryFile("crm-sync.yaml", "database_url: \(TestDatabase.text(url))\n")
            let before = try await run(["--config", path, "--log-level", "info", "--log-format=json", "migrate"])
            #expect(before.status == 0, "\(before.stderr)")
            #expect(before.stdout.contains("migrations applied"), "\(before.stdout)")
            // A JSON log line at info proves both logging options took effect.
            #expect(before.stderr.split(separator: "\n").contains { $0.hasPrefix("{") && $0.contains("\"level\":\"info\"") },
                    "\(before.stderr)")
            let between = try await run(["report", "--config", path, "roi", "--log-level", "warning"])
            #expect(between.status == 0, "\(between.stderr)")
            let after = try await run(["migrate", "--config", path])
            #expect(after.status == 0 && after.stdout.contains("already current"), "\(after.stdout) \(after.stderr)")
            // A value still has to be given, and an unknown option is still named.
            let missing = try await run(["--config"])
            #expect(missing.status == 64 && missing.stderr.contains("--config"), "\(missing.stderr)")
            let unknown = try await run(["--confg", path, "migrate"])
            #expect(unknown.status == 64 && unknown.stderr.contains("--confg"), "\(unknown.stderr)")
        }
    }

    @Test func migrateRunTwiceAndByTwoProcessesAtOnceExitsZero() async throws {
        try await TestDatabase.with(migrate: false) { _, url in
            let environment = ["DATABASE_URL": TestDatabase.text(url)]
            async let first = run(["migrate"], environment: environment)
            async let second = run(["migrate"], environment: environment)
            let (a, b) = try await (first, second)
            #expect(a.status == 0, "\(a.stderr)")
            #expect(b.status == 0, "\(b.stderr)")
            #expect([a.stdout, b.stdout].filter { $0.contains("migrations applied") }.count == 1)
            let again = try await run(["migrate"], environment: environment)
            #expect(again.status == 0)
            #expect(again.stdout.contains("already current"))
        }
    }

    @Test func aSyncThatCannotReachItsCRMFailsWithOneClearLine() async throws {
        try await TestDatabase.with { _, url in
            let path = try temporaryFile("crm-sync.yaml", """
                connectors:
                  - name: hubspot-main
                    kind: hubspot
                    base_url: http://127.0.0.1:9
                    token_env: HUBSPOT_TOKEN
                    mapping: \(TestDatabase.packageRoot)/Mappings/hubspot.yaml
                    max_attempts: 2
                    request_timeout: 2s
                """)
            let result = try await run(["sync", "--config", path], environment: ["HUBSPOT_TOKEN": "pat-123", "DATABASE_URL": TestDatabase.text(url)])
            #expect(result.status != 0)
            let lines = result.stderr.split(separator: "\n")
            #expect(lines.last?.hasPrefix("crm-sync: hubspot-main: gave up after 2 attempts") == true, "\(result.stderr)")
            #expect(!result.stderr.contains("pat-123"))
        }
    }

    @Test func helpExplainsEveryCommand() async throws {
        let result = try await run(["--help"])
        #expect(result.status == 0)
        for command in ["migrate", "sync", "serve", "report", "costs", "demo", "simulate"] {
            #expect(result.stdout.contains(command))
        }
        let sync = try await run(["sync", "--help"])
        for flag in ["--connector", "--once", "--every", "--full", "--config"] { #expect(sync.stdout.contains(flag)) }
    }

    @Test func costsImportRejectsABadFileWholeAndIsIdempotent() async throws {
        try await TestDatabase.with { client, url in
            let environment = ["DATABASE_URL": TestDatabase.text(url)]
            let bad = try temporaryFile("bad.csv", "campaign,category,amount,currency,period\nwp,content,100,JPY,2026-10\nwp,tool,abc,JPY,2026-10\n")
            let rejected = try await run(["costs", "import", bad], environment: environment)
            #expect(rejected.status != 0)
            #expect(rejected.stderr.contains("line 3"), "\(rejected.stderr)")
            let count = { try await client.query("SELECT count(*)::int8 FROM crm.campaign_costs", logger: TestDatabase.logger).collect().first!.decode(Int64.self) }
            #expect(try await count() == 0)
            let good = "\(TestDatabase.packageRoot)/examples/costs.csv"
            let first = try await run(["costs", "import", good], environment: environment)
            #expect(first.status == 0, "\(first.stderr)")
            let rows = try await count()
            let second = try await run(["costs", "import", good], environment: environment)
            #expect(second.stdout.contains("0 rows added or changed"))
            #expect(try await count() == rows)
        }
    }

    /// The main job, as the README's quick start runs it (here on a scratch database instead of the
    /// embedded cluster): deals cross HTTP from the simulator into PostgreSQL, the ROI table is
    /// printed from them, and the HTML report is written where it says.
    @Test func theDemoPrintsAnROITableFromSyncedDataAndWritesTheHTMLReport() async throws {
        try await TestDatabase.with(migrate: false) { client, url in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
            let html = "\(folder)/report.html"
            let result = try await run(["demo", "--deals", "300", "--html", html], environment: ["DATABASE_URL": TestDatabase.text(url)])
            #expect(result.status == 0, "\(result.stderr)")
            let deals = try await client.query("SELECT count(*)::int8 FROM crm.deals WHERE connector = 'hubspot-demo'", logger: TestDatabase.logger)
                .collect().first!.decode(Int64.self)
            // The simulated CRM the demo runs (seed 42 at the demo's reference time), less what it archived.
            let simulated = SimulatedDataset.generate(seed: 42, deals: 300, now: Demo.referenceDate)
            let live = simulated.objects["deals"]!.values.filter { !$0.archived }.count
            #expect(live > 250 && deals == Int64(live), "every live simulated deal synced over HTTP")
            let lines = result.stdout.split(separator: "\n").map(String.init)
            let header = try #require(lines.firstIndex { $0.hasPrefix("ROI by campaign") }, "\(result.stdout)")
            // Campaign rows whose revenue is not zero: attribution credited synced, closed-won deals.
            let campaigns = try await client.query(
                "SELECT count(*)::int8 FROM reporting.roi_by_campaign WHERE attributed_revenue > 0", logger: TestDatabase.logger
            ).collect().first!.decode(Int64.self)
            #expect(campaigns > 0)
            #expect(lines.count > header + 3, "\(result.stdout)")
            #expect(lines.last == "HTML report: \(html)")
            let page = try String(contentsOfFile: html, encoding: .utf8)
            #expect(page.contains("<svg") && page.contains("ROI"))
        }
    }

    /// Without DATABASE_URL or `database_url`, a command starts its own private cluster, says
    /// where, and goes on (it used to wait forever for the start script once the server was up).
    @Test func withoutADatabaseURLTheEmbeddedClusterIsStartedAndUsed() async throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("home-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: home) }
        let stop = { _ = try? await ChildProcess.run("/bin/bash", ["\(TestDatabase.packageRoot)/scripts/pg.sh", "stop", "\(home)/postgres"]) }
        do {
            let result = try await ChildProcess.run(
                Self.binary, ["migrate", "--log-level", "info"], environment: ["CRM_SYNC_HOME_DIR": home, "CRM_SYNC_PG_FAST": "1"],
                directory: TestDatabase.packageRoot)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("migrations applied: 001_core.sql"), "\(result.stdout)")
            #expect(result.stderr.contains("\(home)/postgres"), "says where the cluster is: \(result.stderr)")
            let again = try await ChildProcess.run(
                Self.binary, ["migrate"], environment: ["CRM_SYNC_HOME_DIR": home], directory: TestDatabase.packageRoot)
            #expect(again.status == 0 && again.stdout.contains("migrations: already current"), "reuses the running cluster: \(again.stdout)")
        } catch {
            await stop()
            throw error
        }
        await stop()
    }
}
