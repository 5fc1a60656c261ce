import AsyncHTTPClient
import CRMSimulator
import CRMSyncApp
import CRMSyncCore
import CRMSyncTestSupport
import Foundation
import Logging
import Testing

/// What an operator greps for: every line a sync writes names its connector and its run, and the
/// per-stream lines their stream, so one run can be followed through several replicas' logs.
@Suite struct SyncLogTests {
    @Test func everySyncLineCarriesConnectorRunAndStream() async throws {
        let sink = JSONLogHandlerTests.Lines()
        let logger = {
            var logger = Logger(label: "crm-sync") { label in JSONLogHandler(label: label, write: { sink.append($0) }) }
            logger.logLevel = .debug
            return logger
        }()
        let state = SimulatorState(data: SimulatedDataset.generate(seed: 5, deals: 30, now: Date()), rateLimit: (1_000, 1_000))
        let tests = SyncAgainstSimulatorTests()
        try await TestDatabase.with { client, _ in
            try await tests.withSimulator(state) { port in
                let config = try tests.connectorConfig(port: port, rate: 1_000, searchRate: 1_000)
                for _ in 0..<2 {
                    _ = try await HTTPClient.shared.withConnector(config, logger: tests.logger) { crm in
                        try await SyncEngine(config: config, connector: crm, client: client, logger: logger).run(full: false)
                    }
                }
            }
        }
        let lines = try sink.all.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let started = lines.filter { $0["message"] as? String == "sync started" }
        #expect(started.count == 2)
        #expect(started.allSatisfy { $0["connector"] as? String == "hs" })
        let runs = Set(started.compactMap { $0["run"] as? String })
        #expect(runs.count == 2, "each run has its own id")
        let streams = lines.filter { $0["message"] as? String == "stream read" }
        #expect(streams.count >= 2 * 4)
        #expect(streams.allSatisfy { $0["connector"] as? String == "hs" && runs.contains($0["run"] as? String ?? "") && $0["stream"] as? String != nil })
        #expect(Set(streams.compactMap { $0["stream"] as? String }).isSuperset(of: ["deals", "contacts"]))
    }
}
