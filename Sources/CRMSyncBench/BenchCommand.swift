import ArgumentParser
import CRMSyncStorage
import Foundation
import Logging
import PostgresNIO

/// `crm-sync-bench`: prints figures for BENCHMARKS.md. Each benchmark measures its own baseline in
/// the same run (for example `COPY` of the same rows), so the figures are ratios that survive a
/// change of machine. Build it in release mode: `swift run -c release crm-sync-bench sync`.
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crm-sync-bench",
        abstract: "Benchmarks of crm-sync that print figures (see BENCHMARKS.md).",
        subcommands: [SyncBench.self, AttributionBench.self, IncrementalAttributionBench.self, EventsBench.self, NurtureBench.self]
    )
}

/// Where a benchmark's scratch database lives: `--database-url`, `DATABASE_URL`, or a private
/// cluster under `.crm-sync/bench-postgres` started with scripts/pg.sh.
struct ServerOptions: ParsableArguments {
    @Option(help: "PostgreSQL server to create the scratch database on (default: DATABASE_URL, else a private cluster in .crm-sync/bench-postgres).")
    var databaseURL: String?

    func server() throws -> DatabaseURL {
        if let text = databaseURL ?? ProcessInfo.processInfo.environment["DATABASE_URL"] { return try DatabaseURL(text) }
        let url = try EmbeddedPostgres(directory: ".crm-sync/bench-postgres").start()
        return try DatabaseURL(url)
    }
}

enum Bench {
    static var logger: Logger {
        var logger = Logger(label: "bench")
        logger.logLevel = .warning
        return logger
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Peak resident memory of this process (VmHWM), in MiB.
    static func peakMemoryMiB() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Double(line.split(separator: " ").dropFirst().first ?? "")
        else { return 0 }
        return kb / 1024
    }

    /// Runs one statement and returns its wall time in seconds.
    static func time(_ client: PostgresClient, _ sql: String) async throws -> Double {
        let start = ContinuousClock.now
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
        return seconds(since: start)
    }

    static func format(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }
}
