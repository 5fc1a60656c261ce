import ArgumentParser
import AsyncHTTPClient
import CRMSimulator
import CRMSyncApp
import CRMSyncConfig
import CRMSyncCore
import CRMSyncServer
import CRMSyncStorage
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle

func stderr(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Turns any failure into one clear line on stderr and a non-zero exit.
func reportingFailures(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let error as ExitCode {
        throw error
    } catch let error as CleanExit {
        throw error
    } catch {
        stderr("crm-sync: \(DatabaseError.describe(error))")
        throw ExitCode.failure
    }
}

/// `--once` and `--every DURATION` of the commands that can repeat.
func validateRepetition(once: Bool, every: String?) throws {
    if once, every != nil { throw ValidationError("--once and --every exclude each other") }
    if let every, DurationText.parse(every) == nil { throw ValidationError("--every: expected a duration such as 30s, 5m or 1h") }
}

@main
struct CRMSync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crm-sync",
        abstract: "Keeps a B2B marketing programme in step with the sales team's CRM.",
        discussion: """
            Polls HubSpot (and, soon, Salesforce and Pipedrive) incrementally into PostgreSQL, receives CRM and \
            marketing webhooks, and reports ROI per campaign under several attribution models.
            Start with `crm-sync demo`: it needs no configuration.
            """,
        subcommands: [Migrate.self, Sync.self, Serve.self, Nurture.self, Inbox.self, Outbox.self, Report.self, Costs.self, Demo.self, Simulate.self])

    /// The global options may come before the verb (`crm-sync --config x.yaml migrate`) as well
    /// as after it: they are moved to just after the verb, where the commands declare them.
    static func main() async {
        await main(GlobalOptions.movedAfterTheVerb(Array(CommandLine.arguments.dropFirst()), root: CRMSync.self))
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply sql/*.sql in order, once each (safe to run twice, and from two processes at once).")
    @OptionGroup var global: GlobalOptions

    func run() async throws {
        try await reportingFailures {
            let runtime = try global.runtime()
            let applied = try await runtime.withDatabase(migrate: false) { client in
                try await Migrator(directory: Migrator.locateDirectory()).migrate(client: client, logger: runtime.logger)
            }
            print(applied.isEmpty ? "migrations: already current" : "migrations applied: \(applied.joined(separator: ", "))")
        }
    }
}

struct Sync: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Poll the configured CRMs incrementally into PostgreSQL; progress on stderr.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Sync only this connector (its `name` in the config).") var connector: String?
    @Flag(help: "Run once and exit (the default).") var once = false
    @Option(help: "Run again every DURATION (e.g. 5m) until interrupted.") var every: String?
    @Flag(help: "Re-read everything instead of resuming from the cursors, and mark records the CRM no longer has as deleted.") var full = false

    func validate() throws {
        try validateRepetition(once: once, every: every)
    }

    func run() async throws {
        try await reportingFailures {
            let runtime = try global.runtime()
            let connectors = runtime.config.connectors.filter { connector == nil || $0.name == connector }
            if let connector, connectors.isEmpty {
                throw ValidationError("--connector: no connector named '\(connector)' in the config")
            }
            guard !connectors.isEmpty else { throw ValidationError("no connectors configured (see README: Configuration)") }
            let interval = every.flatMap(DurationText.parse)
            try await runtime.withDatabase { client in
                repeat {
                    for config in connectors {
                        let summary = try await HTTPClient.shared.withConnector(config, logger: runtime.logger) { crm in
                            try await SyncEngine(config: config, connector: crm, client: client, logger: runtime.logger, progress: stderr).run(full: full)
                        }
                        stderr("sync: \(summary)")
                    }
                    if let interval { try await Task.sleep(for: interval) }
                } while interval != nil
            }
        }
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the webhook receiver with /healthz and /readyz; stops gracefully on SIGTERM.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Option(help: "Port to listen on.") var port = 8080
    @Option(help: "How long a job's lease (one connector's sync, the attribution refresh) lasts without renewal, e.g. 30s. Several `serve` processes on one database share the work; a dead one's job is taken over within this time.") var leaseTime = "30s"
    @Option(help: "On SIGTERM or SIGINT, how long a running job (a sync retrying a CRM that is down, say) may take to finish before it is cancelled, e.g. 10s. Its cursor stays at its last committed page either way; keep it below the orchestrator's own stop timeout (compose's stop_grace_period, Kubernetes' terminationGracePeriodSeconds).") var shutdownGrace = "10s"

    func validate() throws {
        guard let lease = DurationText.parse(leaseTime), lease >= .seconds(3) else { throw ValidationError("--lease-time: expected a duration of 3s or more, such as 30s or 2m") }
        guard DurationText.parse(shutdownGrace) != nil else { throw ValidationError("--shutdown-grace: expected a duration such as 10s or 1m") }
    }

    func run() async throws {
        try await reportingFailures {
            let runtime = try global.runtime()
            MetricsRegistry.bootstrap()
            try await runtime.withDatabase { client in
                let migrator = Migrator(directory: Migrator.locateDirectory())
                let logger = runtime.logger
                // Ready means: the database answers and every migration this binary knows is applied.
                let ready: @Sendable () async -> Bool = {
                    (try? await migrator.pending(client: client, logger: logger).isEmpty) ?? false
                }
                let receiver = WebhookReceiver(config: runtime.config, client: client, logger: runtime.logger, ready: ready)
                let http = receiver.services(host: host, port: port, logger: runtime.logger) { port in
                    stderr("serve: listening on http://\(host):\(port)")
                }
                // SIGTERM/SIGINT: stop accepting, finish in-flight requests (committing their events)
                // and the current scheduled step.
                let services = ServiceGroup(configuration: .init(
                    services: http + [.init(service: Scheduler(
                        runtime: runtime, client: client, leaseTime: DurationText.parse(leaseTime) ?? .seconds(30),
                        shutdownGrace: DurationText.parse(shutdownGrace) ?? .seconds(10)))],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: runtime.logger))
                try await services.run()
            }
        }
    }
}

struct Nurture: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The nurture engine: step-mail sequences, silent periods, reactivation, hand-off SLA.", subcommands: [Tick.self])

    struct Tick: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "One pass of the nurture engine: enrol, exit, pause, resume, advance, reactivate, score, SLA.",
            discussion: """
                Reads the sequences of Mappings/sequences/ (or the config's `sequences:` directory) and each connector's \
                mapping policy, and writes every decision with its outbox command in the same transaction. Running it \
                twice at the same --now changes nothing the second time.
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "The instant to run at, ISO 8601 (e.g. 2026-11-05T00:00:00Z); default: now.") var now: String?

        func validate() throws {
            if let now, CRMTimestamp.parse(now) == nil { throw ValidationError("--now: expected an ISO 8601 instant such as 2026-11-05T00:00:00Z") }
        }

        func run() async throws {
            try await reportingFailures {
                let runtime = try global.runtime()
                let definitions = try NurtureSetup.definitions(config: runtime.config)
                let instant = now.flatMap(CRMTimestamp.parse) ?? Date()
                let summary = try await runtime.withDatabase { client in
                    try await NurtureSetup.tick(definitions: definitions, now: instant, client: client, logger: runtime.logger)
                }
                print("nurture tick at \(CRMTimestamp.iso(instant)): \(summary)")
            }
        }
    }
}

struct Inbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The webhook inbox: events committed before each webhook was acknowledged.", subcommands: [Replay.self])

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-queue dead-lettered webhook events and apply them again now.",
            discussion: """
                An inbox event that could not be applied (for example an engagement event whose contact names no \
                synced connector and has no e-mail) is kept in crm.dead_letters with its reason. Fix the cause \
                (e.g. run the sync), then replay: the events are applied idempotently, so replaying twice is harmless. \
                An event that still cannot be applied gets a new dead letter.
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "Replay only the dead letter with this id (crm.dead_letters.id); default: every open one.") var id: Int64?

        func run() async throws {
            try await reportingFailures {
                let runtime = try global.runtime()
                let result = try await runtime.withDatabase { client in
                    try await InboxProcessor(client: client, logger: runtime.logger).replay(deadLetterID: id)
                }
                if let id, result.requeued == 0 { throw ValidationError("--id: no open dead letter with id \(id)") }
                print("inbox replay: \(result.requeued) re-queued; applied \(result.outcome.applied), dead-lettered again \(result.outcome.deadLettered)")
            }
        }
    }
}

struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The command outbox: what the nurture engine decided, delivered to the MA endpoint and the CRMs.",
        subcommands: [Deliver.self, Replay.self])

    struct Deliver: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deliver due outbox commands (`serve` does this continuously).",
            discussion: """
                Commands to `ma` are POSTed to outbound.url, signed per Standard Webhooks, with webhook-id and \
                Idempotency-Key set to the command's id; `create_task` commands to a connector create a task in that \
                CRM. A failure is retried with exponential backoff; after outbound.max_attempts (default 8) the \
                command is dead (see `crm-sync outbox replay`).
                """)
        @OptionGroup var global: GlobalOptions
        @Flag(help: "One pass, then exit.") var once = false
        @Option(help: "Without --once: pass again every DURATION (default 5s) until interrupted.") var every: String?

        func validate() throws {
            try validateRepetition(once: once, every: every)
        }

        func run() async throws {
            try await reportingFailures {
                let runtime = try global.runtime()
                let interval = every.flatMap(DurationText.parse) ?? .seconds(5)
                try await runtime.withDatabase { client in
                    let dispatcher = try OutboxDispatcher.make(config: runtime.config, client: client, logger: runtime.logger)
                    repeat {
                        let summary = try await dispatcher.pass()
                        let backlog = try await dispatcher.store.backlog()
                        print("outbox: \(summary); pending \(backlog.pending), dead \(backlog.dead)")
                        if !once { try await Task.sleep(for: interval) }
                    } while !once
                }
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revive dead outbox commands: attempts start over and they are due at once.",
            discussion: "The command keeps its id, so the receiver sees the same webhook-id / Idempotency-Key as before.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Revive only the dead command with this id (crm.outbox.id); default: every dead one.") var id: String?

        func run() async throws {
            try await reportingFailures {
                let runtime = try global.runtime()
                let revived = try await runtime.withDatabase { client in
                    try await OutboxStore(client: client, logger: runtime.logger, worker: "replay").replay(id: id, now: Date())
                }
                if let id, revived.isEmpty { throw ValidationError("--id: no dead outbox command with id \(id)") }
                print("outbox replay: \(revived.count) revived")
            }
        }
    }
}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read the reporting views.", subcommands: [ROI.self, HTMLPage.self])

    struct HTMLPage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "html",
            abstract: "Write one self-contained HTML file (no network) with charts: ROI per model, funnel, e-mail rates, nurture, stalled prospects, SLA breaches.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "File to write, e.g. report.html (replaced if it exists).") var out: String
        @Option(help: "Only this workspace's figures (a connector's `workspace` in the config); default: every workspace.") var workspace: String?
        @Flag(help: "Recompute every deal's attribution from scratch (crm.refresh_attribution()) instead of only the deals changed since the last refresh. Same figures; use it after writing to crm.* behind the triggers' back (e.g. with session_replication_role = replica).") var full = false

        func run() async throws {
            try await reportingFailures {
                let runtime = try global.runtime()
                let attribution = runtime.config.attribution
                let dashboard = try await runtime.withDatabase { client in
                    try await ReportReader().refreshAttribution(
                        grossMargin: attribution.grossMargin, lookbackDays: attribution.lookbackDays,
                        halfLifeDays: attribution.timeDecayHalfLifeDays, full: full, client: client, logger: runtime.logger)
                    return try await DashboardReader().read(workspace: workspace, client: client, logger: runtime.logger)
                }
                let html = workspace.map { HTMLReport.render(dashboard, title: "crm-sync: marketing programme report, workspace \($0)") }
                    ?? HTMLReport.render(dashboard)
                do {
                    try Data(html.utf8).write(to: URL(fileURLWithPath: out), options: .atomic)
                } catch {
                    stderr("crm-sync: --out \(out): cannot write the report: \(error.localizedDescription)")
                    throw ExitCode.failure
                }
                FileHandle.standardError.write(Data("report: wrote \(out) (\(html.utf8.count / 1024) KiB)\n".utf8))
            }
        }
    }

    struct ROI: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "roi", abstract: "ROI per campaign: (attributed revenue × gross margin − cost) ÷ cost.",
            discussion: """
                reporting.roi_by_campaign is already current after each sync, inbox pass and costs import (they \
                recompute the deals they changed). This command pushes the config's attribution settings (a change \
                recomputes every deal) and the deals still queued, then prints the view; --full recomputes every deal. \
                How current the figures are: SELECT * FROM reporting.attribution_status().
                """)
        @OptionGroup var global: GlobalOptions
        @Option(help: "Attribution model: first_touch, last_touch, linear, u_shaped, w_shaped, time_decay (default: all).") var model: String?
        @Option(help: "Output format: table, csv or json.") var format: String = "table"
        @Option(help: "Only this workspace's campaigns; default: every workspace (the table then shows which).") var workspace: String?
        @Flag(help: "Recompute every deal's attribution from scratch (crm.refresh_attribution()) instead of only the deals changed since the last refresh. Same figures; use it after writing to crm.* behind the triggers' back (e.g. with session_replication_role = replica).") var full = false

        func validate() throws {
            guard ROIReport.Format(rawValue: format) != nil else { throw ValidationError("--format: expected table, csv or json") }
            if let model, !["first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay"].contains(model) {
                throw ValidationError("--model: unknown model '\(model)'")
            }
        }

        func run() async throws {
            try await reportingFailures {
                let runtime = try global.runtime()
                let attribution = runtime.config.attribution
                let rows = try await runtime.withDatabase { client in
                    try await ReportReader().refreshAttribution(
                        grossMargin: attribution.grossMargin, lookbackDays: attribution.lookbackDays,
                        halfLifeDays: attribution.timeDecayHalfLifeDays, full: full, client: client, logger: runtime.logger)
                    return try await ReportReader().roi(model: model, workspace: workspace, client: client, logger: runtime.logger)
                }
                print(ROIReport.render(rows, format: ROIReport.Format(rawValue: format)!))
            }
        }
    }
}

struct Costs: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Programme costs.", subcommands: [Import.self])

    struct Import: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Import campaign,category,amount,currency,period rows (with a header). A bad row rejects the whole file; importing the same file twice changes nothing.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The CSV file.") var file: String
        @Option(help: "The workspace (business unit) these costs belong to; ROI is per workspace.") var workspace = "default"

        func validate() throws {
            guard Workspace.isValidName(workspace) else {
                throw ValidationError("--workspace: '\(workspace)' is not a workspace name (\(Workspace.rule))")
            }
        }

        func run() async throws {
            try await reportingFailures {
                let runtime = try global.runtime()
                guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                    throw ValidationError("\(file): cannot read the file")
                }
                let lines: [CostLine]
                do {
                    lines = try CostCSV.parse(text)
                } catch {
                    stderr("crm-sync: \(file): \(error)")
                    throw ExitCode.failure
                }
                let changed = try await runtime.withDatabase { client in
                    try await CostStore().importLines(lines, workspace: workspace, client: client, logger: runtime.logger)
                }
                print("costs: \(lines.count) lines read from \(file), \(changed) rows added or changed (workspace \(workspace))")
            }
        }
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The main job on the embedded default: simulated CRM → sync → webhooks → costs → nurture → ROI report and HTML report.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "How many deals the simulated CRM holds.") var deals = 2_000
    @Option(help: "Seed of the simulated data.") var seed: UInt64 = 42
    @Option(help: "Where to write the HTML report (default: report.html next to the embedded cluster, under .crm-sync/ or $CRM_SYNC_HOME_DIR).") var html: String?

    func run() async throws {
        try await reportingFailures {
            let runtime = try global.runtime()
            let home = ProcessInfo.processInfo.environment["CRM_SYNC_HOME_DIR"] ?? ".crm-sync"
            try await CRMSyncApp.Demo(runtime: runtime, deals: deals, seed: seed, htmlPath: html ?? "\(home)/report.html",
                                      print: { Swift.print($0) }, progress: stderr).run()
        }
    }
}

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stand-ins for outside systems.", subcommands: [CRM.self])

    struct CRM: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "crm", abstract: "Serve a simulated CRM speaking its real wire format, with its rate limit and injected faults.")
        @Option(help: "hubspot, salesforce or pipedrive.") var kind: String = "hubspot"
        @Option(help: "Address to listen on (0.0.0.0 inside a container).") var host = "127.0.0.1"
        @Option(help: "Port to listen on (0 picks a free one).") var port = 0
        @Option(help: "Seed of the generated data.") var seed: UInt64 = 1
        @Option(help: "How many deals to generate.") var records = 1_000
        @Option(help: "Faults, e.g. 429=0.05,500=0.02,503=0.02,slow=0.02,hang=0.005,truncate=0.02,repeat=0.05,mutate=0.02,out_of_order=0.02, or 'all'.") var faults: String?
        @Option(help: "Requests per second the account allows (search endpoints get half); default 10 for hubspot and pipedrive, 25 for salesforce.") var rate: Double?
        @Option(help: "The token clients must send (HubSpot and Salesforce bearer token, Pipedrive x-api-token).") var token = "sim-token"

        func validate() throws {
            guard CRMKind(rawValue: kind) != nil else { throw ValidationError("--kind: expected hubspot, salesforce or pipedrive") }
            if let faults { _ = try FaultSpec(parsing: faults) }
        }

        func run() async throws {
            let spec = try faults.map { try FaultSpec(parsing: $0) } ?? .none
            let crm = CRMKind(rawValue: kind) ?? .hubspot
            let data = crm == .pipedrive
                ? PipedriveCompany.generate(seed: seed, deals: records, now: Date())
                : SimulatedDataset.generate(seed: seed, deals: records, now: Date())
            // Salesforce limits the day's requests rather than the second's: allow more than the connector's 20/s.
            let rate = self.rate ?? (crm == .salesforce ? 25 : 10)
            let state = SimulatorState(data: data, faults: spec, seed: seed, rateLimit: (rate, max(rate / 2, 1)))
            let server = SimulatorServer(kind: crm, state: state, token: token)
            let host = self.host
            let app = server.application(host: host, port: port, onRunning: { port in stderr("simulate: \(kind) on http://\(host):\(port) (token \(token))") })
            try await app.runService()
        }
    }
}
