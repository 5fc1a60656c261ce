import AsyncHTTPClient
import CRMSimulator
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Testing

/// `crm-sync serve` as an operator runs it: its scheduler syncs the configured CRM, and `/metrics`
/// (scraped while it works) shows records, HTTP requests by status and the last success per connector.
@Suite struct ServeMetricsTests {
    let support = SyncAgainstSimulatorTests()

    /// A port nothing listens on right now (bind to 0, read it, close).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw CocoaError(.fileNoSuchFile) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Starts `crm-sync serve` against the test database, with `environment` added to this
    /// process's own; stdout is dropped, stderr goes to `stderr` (dropped by default).
    static func startServe(_ arguments: [String], database: DatabaseURL, environment: [String: String],
                           stderr: Any = FileHandle.nullDevice) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: CommandLineTests.binary)
        process.arguments = ["serve"] + arguments
        var merged = ProcessInfo.processInfo.environment
        merged["DATABASE_URL"] = TestDatabase.text(database)
        for (name, value) in environment { merged[name] = value }
        process.environment = merged
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderr
        try process.run()
        return process
    }

    @Test func metricsAreScrapedWhileTheSchedulerSyncs() async throws {
        let data = SimulatedDataset.generate(seed: 31, deals: 600, now: Date())
        // A tight rate limit makes the first sync take a few seconds, so scrapes see it under way.
        let state = SimulatorState(data: data, seed: 31, rateLimit: (40, 20))
        try await support.withSimulator(state) { simPort in
            try await TestDatabase.with { client, url in
                let port = try Self.freePort()
                let config = try CommandLineTests().temporaryFile("crm-sync.yaml", """
                    connectors:
                      - name: hs
                        kind: hubspot
                        base_url: http://127.0.0.1:\(simPort)
                        token_env: HUBSPOT_TOKEN
                        mapping: \(TestDatabase.packageRoot)/Mappings/hubspot.yaml
                        poll_interval: 2s
                        requests_per_second: 30
                        search_requests_per_second: 15
                        page_size: 50
                    """)
                let process = try Self.startServe(["--config", config, "--port", "\(port)"], database: url,
                                                  environment: ["HUBSPOT_TOKEN": "sim-token"])
                defer { if process.isRunning { process.terminate() } }

                let scrapes = Locked<[String]>([])
                let finished = try await eventually(every: .milliseconds(250)) {
                    guard let response = try? await HTTPClient.shared.get(url: "http://127.0.0.1:\(port)/metrics").get(),
                          response.status == .ok, let body = response.body else { return false }
                    let text = String(buffer: body)
                    scrapes.withLock { $0.append(text) }
                    return text.contains("crm_sync_last_success_timestamp_seconds{connector=\"hs\"}")
                }
                #expect(finished, "a sync finished and /metrics says when")
                let during = scrapes.withLock { $0 }.filter { $0.contains("crm_sync_records_total") && !$0.contains("crm_sync_last_success_timestamp_seconds") }
                #expect(!during.isEmpty, "at least one scrape saw records counted before the first sync finished")
                let last = try #require(scrapes.withLock { $0.last })
                #expect(Self.value(last, #"crm_sync_records_total{connector="hs",stream="deals"}"#) ?? 0 >= 590)
                #expect(Self.value(last, #"crm_sync_http_requests_total{connector="hs",status="200"}"#) ?? 0 > 10)
                #expect(last.contains("crm_sync_inbox_pending"))
                #expect(last.contains("crm_sync_outbox_pending"))
                #expect(last.contains("# TYPE crm_sync_records_total counter"))

                // Attribution is kept current by the scheduler too, without anyone running a report.
                let refreshed = try await eventually(every: .milliseconds(250)) {
                    try await client.query("SELECT refreshed_at IS NOT NULL FROM crm.attribution_settings", logger: TestDatabase.logger)
                        .collect().first?.decode(Bool.self) ?? false
                }
                #expect(refreshed, "serve refreshed attribution on its own")
                // Sync lag per connector, from the lease table every replica shares.
                let lagText = try await HTTPClient.shared.get(url: "http://127.0.0.1:\(port)/metrics").get().body.map { String(buffer: $0) } ?? ""
                #expect(Self.value(lagText, #"crm_sync_sync_lag_seconds{connector="hs"}"#) != nil, "sync lag is exposed")

                // SIGTERM: a graceful stop with exit code 0.
                process.terminate()
                #expect(try await eventually { !process.isRunning }, "serve was still running 120 s after SIGTERM")
                #expect(process.terminationStatus == 0)
            }
        }
    }

    /// The value of one sample line, e.g. `name{labels} 42`.
    static func value(_ exposition: String, _ sample: String) -> Double? {
        exposition.split(separator: "\n").first { $0.hasPrefix(sample + " ") }.flatMap { Double($0.split(separator: " ").last ?? "") }
    }

    /// No secret reaches a log at any level (issue 12 part 0): `serve --log-level debug` prints
    /// its services and their configuration as it starts and stops (swift-service-lifecycle), and
    /// every token, webhook secret and credential in it is redacted. And SIGTERM stops it within
    /// `--shutdown-grace` even while its syncs retry CRMs that are down.
    @Test func serveAtDebugLevelLogsNoSecret() async throws {
        let secrets = [
            "HUBSPOT_TOKEN": "pat-na1-SECRET-hubspot-token-1f2e",
            "HUBSPOT_CLIENT_SECRET": "SECRET-hubspot-client-secret-77aa",
            "PIPEDRIVE_TOKEN": "SECRET-pipedrive-api-token-9c9c",
            "PIPEDRIVE_WEBHOOK_CREDENTIALS": "hookuser:SECRET-pipedrive-hook-password",
            "SALESFORCE_TOKEN": "00Dxx!SECRET-salesforce-session-4b4b",
            "EVENTS_WEBHOOK_SECRET": "whsec_U0VDUkVULWV2ZW50cy1zZWNyZXQtdmFsdWU=",
            "OUTBOUND_WEBHOOK_SECRET": "whsec_U0VDUkVULW91dGJvdW5kLXNlY3JldA==",
        ]
        try await TestDatabase.with { client, url in
            let port = try Self.freePort(), crm = try Self.freePort()
            let mappings = "\(TestDatabase.packageRoot)/Mappings"
            let config = try CommandLineTests().temporaryFile("crm-sync.yaml", """
                connectors:
                  - name: hs
                    kind: hubspot
                    base_url: http://127.0.0.1:\(crm)
                    token_env: HUBSPOT_TOKEN
                    webhook_secret_env: HUBSPOT_CLIENT_SECRET
                    mapping: \(mappings)/hubspot.yaml
                  - name: pd
                    kind: pipedrive
                    base_url: http://127.0.0.1:\(crm)
                    token_env: PIPEDRIVE_TOKEN
                    webhook_secret_env: PIPEDRIVE_WEBHOOK_CREDENTIALS
                    mapping: \(mappings)/pipedrive.yaml
                  - name: sf
                    kind: salesforce
                    base_url: http://127.0.0.1:\(crm)
                    token_env: SALESFORCE_TOKEN
                    organization_id: 00D000000000001AAA
                    mapping: \(mappings)/salesforce.yaml
                events:
                  secret_env: EVENTS_WEBHOOK_SECRET
                outbound:
                  url: http://127.0.0.1:\(crm)/ma
                  secret_env: OUTBOUND_WEBHOOK_SECRET
                """)
            let errors = Pipe()
            // The CRMs are down: each sync is still retrying when SIGTERM comes, and the grace ends it.
            let process = try Self.startServe(
                ["--config", config, "--port", "\(port)", "--log-level", "debug", "--log-format", "text", "--shutdown-grace", "1s"],
                database: url, environment: secrets, stderr: errors)
            defer { if process.isRunning { process.terminate() } }
            async let logged = errors.fileHandleForReading.readToEnd()
            let ready = try await eventually {
                let response = try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(port)/healthz"), timeout: .seconds(5))
                return response?.status == .ok
            }
            #expect(ready, "serve did not come up")
            process.terminate()
            let text = String(decoding: try await logged ?? Data(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus == 0, "a graceful stop: \(text.suffix(500))")
            #expect(text.contains("debug"), "the debug level took effect: \(text.prefix(500))")
            #expect(text.contains("after the shutdown signal"), "the retrying syncs were stopped by --shutdown-grace: \(text.suffix(800))")
            // The stopped rounds left their leases due at once, for another replica to take over now.
            let held = try await client.query(
                "SELECT count(*)::int8 FROM crm.work_leases WHERE job LIKE 'sync:%' AND (holder IS NOT NULL OR not_before > now())",
                logger: TestDatabase.logger
            ).collect().first!.decode(Int64.self)
            #expect(held == 0, "a stopped replica's sync leases are free and due")
            for (name, value) in secrets {
                // The secret itself, and the part a log would show of a Basic credential or a whsec_ key.
                let parts = [value, String(value.split(separator: ":").last ?? ""), value.replacingOccurrences(of: "whsec_", with: "")]
                let leaked = text.split(separator: "\n").filter { line in parts.contains { !$0.isEmpty && line.contains($0) } }
                #expect(leaked.isEmpty, "\(name) reached the log in \(leaked.count) lines, e.g. \(leaked.first ?? "")")
            }
        }
    }

    /// Two replicas on one database: only one runs the sync, and both `/metrics` report the same
    /// last success for the connector, read from `crm.sync_runs` (issue 21).
    @Test func everyReplicaReportsTheSameLastSuccess() async throws {
        let data = SimulatedDataset.generate(seed: 33, deals: 100, now: Date())
        let state = SimulatorState(data: data, seed: 33, rateLimit: (2_000, 1_000))
        try await support.withSimulator(state) { simPort in
            try await TestDatabase.with { client, url in
                let config = try CommandLineTests().temporaryFile("crm-sync.yaml", """
                    connectors:
                      - name: hs
                        kind: hubspot
                        base_url: http://127.0.0.1:\(simPort)
                        token_env: HUBSPOT_TOKEN
                        mapping: \(TestDatabase.packageRoot)/Mappings/hubspot.yaml
                        poll_interval: 1h
                    """)
                let ports = [try Self.freePort(), try Self.freePort()]
                let processes = try ports.map { port in
                    try Self.startServe(["--config", config, "--port", "\(port)", "--shutdown-grace", "1s"], database: url,
                                        environment: ["HUBSPOT_TOKEN": "sim-token"])
                }
                defer { for process in processes where process.isRunning { process.terminate() } }
                let synced = try await eventually(every: .milliseconds(200)) {
                    try await client.query("SELECT count(*)::int8 FROM crm.sync_runs WHERE status = 'succeeded'", logger: TestDatabase.logger)
                        .collect().first!.decode(Int64.self) == 1
                }
                #expect(synced, "one replica synced the connector")
                let expected = try await client.query(
                    "SELECT extract(epoch FROM finished_at)::float8 FROM crm.sync_runs WHERE status = 'succeeded'", logger: TestDatabase.logger
                ).collect().first!.decode(Double.self)
                var values: [Double?] = []
                for port in ports {
                    let ready = try await eventually(every: .milliseconds(200)) {
                        (try? await HTTPClient.shared.get(url: "http://127.0.0.1:\(port)/healthz").get())?.status == .ok
                    }
                    #expect(ready, "replica on \(port) came up")
                    let text = try await HTTPClient.shared.get(url: "http://127.0.0.1:\(port)/metrics").get().body.map { String(buffer: $0) } ?? ""
                    values.append(Self.value(text, #"crm_sync_last_success_timestamp_seconds{connector="hs"}"#))
                }
                #expect(values.allSatisfy { $0 != nil && abs($0! - expected) < 0.001 }, "both replicas report \(expected): \(values)")
                let replicas = try await client.query("SELECT count(DISTINCT replica)::int8 FROM crm.sync_runs", logger: TestDatabase.logger)
                    .collect().first!.decode(Int64.self)
                #expect(replicas == 1, "only one replica ran the sync")
            }
        }
    }
}
