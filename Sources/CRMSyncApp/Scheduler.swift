import AsyncHTTPClient
import CRMSyncConfig
import CRMSyncStorage
import Foundation
import Logging
import Metrics
import PostgresNIO
import ServiceLifecycle

/// The work `serve` does besides answering HTTP: each connector's sync on its poll interval, and
/// applying the inbox to the domain tables. On graceful shutdown a running step has
/// `shutdownGrace` to finish and is then cancelled: every write commits its checkpoint with its
/// data, so a cancelled step loses only its uncommitted page, which the next run reads again.
public struct Scheduler: Service {
    let runtime: Runtime
    let client: PostgresClient
    let inboxInterval: Duration
    let attributionInterval: Duration
    let outboxInterval: Duration
    let nurtureInterval: Duration
    let leaseTime: Duration
    let leases: WorkLeases
    let shutdownGrace: Duration
    /// The wall clock of the nurture tick and the outbox's backoff; tests pass their own.
    let clock: @Sendable () -> Date

    /// `attributionInterval`: how often the attribution settings of the config are pushed and the
    /// figures of queued deals recomputed. Syncs and the inbox worker already recompute the deals they
    /// change before they finish; this round catches whatever else was queued (a psql session or a
    /// script writing `crm.*`), and becomes the full refresh when the settings changed.
    /// `leaseTime`: how long a job's lease lasts without renewal; a worker that dies mid-job has its
    /// job taken over by another worker within this time.
    public init(runtime: Runtime, client: PostgresClient, inboxInterval: Duration = .seconds(1),
                attributionInterval: Duration = .seconds(300), outboxInterval: Duration = .seconds(2),
                nurtureInterval: Duration = .seconds(60),
                leaseTime: Duration = .seconds(30), worker: String = WorkLeases.workerName(),
                shutdownGrace: Duration = .seconds(10), clock: @escaping @Sendable () -> Date = { Date() }) {
        self.runtime = runtime
        self.client = client
        self.inboxInterval = inboxInterval
        self.attributionInterval = attributionInterval
        self.outboxInterval = outboxInterval
        self.nurtureInterval = nurtureInterval
        self.leaseTime = leaseTime
        self.shutdownGrace = shutdownGrace
        self.clock = clock
        leases = WorkLeases(holder: worker, client: client, logger: runtime.logger)
    }

    public func run() async throws {
        let logger = runtime.logger
        await withDiscardingTaskGroup { group in
            for connector in runtime.config.connectors {
                group.addTask {
                    await leased("sync:\(connector.name)", every: connector.pollInterval) {
                        let summary = try await HTTPClient.shared.withConnector(connector, logger: logger) { crm in
                            try await SyncEngine(config: connector, connector: crm, client: client, logger: logger, replica: leases.holder)
                                .run(full: false)
                        }
                        logger.info("sync finished", metadata: ["connector": "\(connector.name)", "run": "\(summary.run)", "records": "\(summary.records)", "summary": "\(summary)"])
                    }
                }
            }
            group.addTask {
                let attribution = runtime.config.attribution
                await leased("attribution", every: attributionInterval) {
                    try await ReportReader().refreshAttribution(
                        grossMargin: attribution.grossMargin, lookbackDays: attribution.lookbackDays,
                        halfLifeDays: attribution.timeDecayHalfLifeDays, full: false, client: client, logger: logger)
                }
            }
            group.addTask {
                // The outbox: commands the nurture engine committed, to the MA endpoint and the CRMs.
                let worker = leases.holder
                await leased("outbox", every: outboxInterval) {
                    let dispatcher = try OutboxDispatcher.make(config: runtime.config, client: client, worker: worker, clock: clock, logger: logger)
                    let summary = try await dispatcher.pass()
                    if summary != OutboxPassSummary() { logger.info("outbox pass", metadata: ["summary": "\(summary)"]) }
                }
            }
            group.addTask {
                // One worker at a time runs the tick; a bad sequence file is logged and retried each round.
                await leased("nurture-tick", every: nurtureInterval) {
                    let definitions = try NurtureSetup.definitions(config: runtime.config)
                    let summary = try await NurtureSetup.tick(definitions: definitions, now: clock(), client: client, logger: logger)
                    logger.info("nurture tick", metadata: ["summary": "\(summary)"])
                }
            }
            group.addTask {
                await every(inboxInterval, name: "inbox") {
                    let outcome = try await InboxProcessor(client: client, logger: logger).drain()
                    if outcome.applied > 0 { Counter(label: "crm_sync_inbox_applied_total").increment(by: outcome.applied) }
                    if outcome.deadLettered > 0 {
                        Counter(label: "crm_sync_inbox_dead_lettered_total").increment(by: outcome.deadLettered)
                        logger.warning("inbox events dead-lettered", metadata: ["count": "\(outcome.deadLettered)"])
                    }
                }
            }
        }
    }

    /// Runs `step` now and then every `interval` until graceful shutdown; a failing step is logged
    /// and counted, and the loop goes on (the next run resumes from the committed cursors).
    private func every(_ interval: Duration, name: String, _ step: @escaping @Sendable () async throws -> Void) async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await withinShutdownGrace(step)
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

    struct LeaseLost: Error, CustomStringConvertible {
        var job: String
        var description: String { "lost the lease on \(job) (another worker took it over)" }
    }

    /// Runs `step` once per `interval` across all workers sharing the database: whoever claims the
    /// job's lease runs it and renews the lease while it works; the others check back every third
    /// of the lease time, so a dead holder's job is taken over within the lease time.
    private func leased(_ job: String, every interval: Duration, _ step: @escaping @Sendable () async throws -> Void) async {
        let leases = self.leases, leaseTime = self.leaseTime
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                if try await leases.claim(job, for: leaseTime) {
                    do {
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            group.addTask { try await withinShutdownGrace(step) }
                            group.addTask {
                                while true {
                                    try await Task.sleep(for: leaseTime / 3)
                                    guard try await leases.renew(job, for: leaseTime) else { throw LeaseLost(job: job) }
                                }
                            }
                            // The step ends first unless the lease is lost; either way the other child is stopped.
                            try await group.next()
                            group.cancelAll()
                        }
                        try await leases.finish(job, nextRoundIn: interval)
                    } catch let lost as LeaseLost {
                        throw lost
                    } catch {
                        // The round failed: free the job for the next round (the cursors were kept).
                        // Stopped by a shutdown, it is due at once, so another replica takes it over
                        // now rather than a poll interval later.
                        try? await leases.finish(job, nextRoundIn: Task.isShuttingDownGracefully ? .zero : interval)
                        throw error
                    }
                }
            } catch {
                Counter(label: "crm_sync_scheduler_errors_total", dimensions: [("job", job)]).increment()
                runtime.logger.error("scheduled job failed", metadata: ["job": "\(job)", "error": "\(DatabaseError.describe(error))"])
            }
            do {
                try await gracefulShutdownOrSleep(for: min(interval, leaseTime / 3))
            } catch {
                return
            }
        }
    }

    struct ShutdownGraceExpired: Error, CustomStringConvertible {
        var grace: Duration
        var description: String { "stopped: the step was still running \(grace) after the shutdown signal (its cursor stays where it was committed)" }
    }

    /// Runs `step`; once graceful shutdown begins, it has `shutdownGrace` to finish before it is
    /// cancelled (a sync retrying a CRM that is down would otherwise hold the stop for minutes).
    private func withinShutdownGrace(_ step: @escaping @Sendable () async throws -> Void) async throws {
        let grace = shutdownGrace
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await step() }
            group.addTask {
                try await gracefulShutdown()
                try await Task.sleep(for: grace)
                throw ShutdownGraceExpired(grace: grace)
            }
            // The step ends first unless the grace runs out; either way the other child is stopped.
            try await group.next()
            group.cancelAll()
        }
    }

    private func gracefulShutdownOrSleep(for interval: Duration) async throws {
        try await cancelWhenGracefulShutdown {
            try await Task.sleep(for: interval)
        }
    }
}

extension Scheduler: CustomStringConvertible, CustomReflectable {
    /// What service-lifecycle logs as it starts and stops the scheduler: its jobs, no credentials.
    public var description: String {
        "Scheduler(worker: \(leases.holder), connectors: [\(runtime.config.connectors.map(\.name).joined(separator: ", "))], "
            + "leaseTime: \(leaseTime))"
    }

    public var customMirror: Mirror {
        Mirror(self, children: ["worker": leases.holder, "connectors": runtime.config.connectors.map(\.name), "leaseTime": leaseTime],
               displayStyle: .struct)
    }
}
