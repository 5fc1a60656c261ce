import AsyncHTTPClient
import CRMSyncConfig
import CRMSyncStorage
import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// The work `serve` does besides answering HTTP: each connector's sync on its poll interval, and
/// applying the inbox to the domain tables. Stops at the end of the current step on graceful shutdown.
public struct Scheduler: Service {
    let runtime: Runtime
    let client: PostgresClient
    let inboxInterval: Duration
    let attributionInterval: Duration

    /// `attributionInterval`: how often credits are recomputed, so reports stay current as deals
    /// close and late touches arrive (a full refresh takes seconds at a million touches).
    public init(runtime: Runtime, client: PostgresClient, inboxInterval: Duration = .seconds(1),
                attributionInterval: Duration = .seconds(300)) {
        self.runtime = runtime
        self.client = client
        self.inboxInterval = inboxInterval
        self.attributionInterval = attributionInterval
    }

    public func run() async throws {
        let logger = runtime.logger
        await withDiscardingTaskGroup { group in
            for connector in runtime.config.connectors {
                group.addTask {
                    await every(connector.pollInterval, name: "sync \(connector.name)") {
                        let summary = try await HTTPClient.shared.withConnector(connector, logger: logger) { crm in
                            try await SyncEngine(config: connector, connector: crm, client: client, logger: logger).run(full: false)
                        }
                        logger.info("sync finished", metadata: ["connector": "\(connector.name)", "records": "\(summary.records)", "summary": "\(summary)"])
                    }
                }
            }
            group.addTask {
                let attribution = runtime.config.attribution
                await every(attributionInterval, name: "attribution") {
                    try await ReportReader().refreshAttribution(
                        grossMargin: attribution.grossMargin, lookbackDays: attribution.lookbackDays,
                        halfLifeDays: attribution.timeDecayHalfLifeDays, client: client, logger: logger)
                }
            }
            group.addTask {
                await every(inboxInterval, name: "inbox") {
                    let applied = try await EventInbox().applyEngagementEvents(client: client, logger: logger)
                    if applied > 0 { Counter(label: "crm_sync_inbox_applied_total").increment(by: applied) }
                }
            }
        }
    }

    /// Runs `step` now and then every `interval` until graceful shutdown; a failing step is logged
    /// and counted, and the loop goes on (the next run resumes from the committed cursors).
    private func every(_ interval: Duration, name: String, _ step: @Sendable () async throws -> Void) async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await step()
            } catch {
                Counter(label: "crm_sync_scheduler_errors_total", dimensions: [("job", name)]).increment()
                runtime.logger.error("scheduled job failed", metadata: ["job": "\(name)", "error": "\(DatabaseError.describe(error))"])
            }
            do {
                try await gracefulShutdownOrSleep(for: interval)
            } catch {
                return
            }
        }
    }

    private func gracefulShutdownOrSleep(for interval: Duration) async throws {
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(for: interval)
        }
    }
}
