import ArgumentParser
import CRMSyncConfig
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO

/// One nurture tick over a million enrollments: due steps to send, contacts entering and leaving
/// silent periods, new touches to enrol and score. The baseline is a plain `UPDATE` touching every
/// enrollment row once, in the same run.
struct NurtureBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nurture",
        abstract: "Time and peak memory of one `nurture tick` over a million enrollments.")

    @Option(help: "Enrollments (one contact each) in the white-paper sequence.") var enrollments = 1_000_000
    @Option(help: "Percent of the enrollments whose next step is due at the tick.") var duePercent = 10
    @Option(help: "Percent of the contacts whose deal enters a sales-owned stage (paused at the tick).") var silentPercent = 5
    @Option(help: "Percent of the enrollments paused earlier whose silent period has ended (resumed at the tick).") var resumePercent = 2
    @Option(help: "New engagement events since the last tick (enrolments and scoring).") var touches = 100_000
    @Option(help: "Directory of the sequence files.") var sequences = "Mappings/sequences"
    @OptionGroup var server: ServerOptions

    func run() async throws {
        do { try await measure() } catch { throw ValidationError(DatabaseError.describe(error)) }
    }

    func measure() async throws {
        let logger = Bench.logger
        let server = try server.server()
        let definitions = NurtureDefinitions(
            sequences: try SequenceLoader.loadDirectory(sequences),
            policies: [ConnectorNurturePolicy(connector: "bench", salesOwned: [.sql, .discovery, .proposal, .negotiation],
                                              policy: NurturePolicy(reactivationSequence: "stalled-reactivation",
                                                                    scoring: [.init(event: "form.submitted", points: 15),
                                                                              .init(event: "page.viewed", matching: "/pricing", points: 10)]))])
        let now = CRMTimestamp.parse("2026-11-18T01:00:00Z")!   // Wednesday 10:00 JST
        print("nurture benchmark: \(enrollments) enrollments (\(duePercent)% due, \(silentPercent)% entering a silent period, \(resumePercent)% resuming), \(touches) new touches, PostgreSQL \(server.host):\(server.port)")
        try await TestDatabase.with(server: server) { client, url in
            func time(_ sql: String) async throws -> Double { try await Bench.time(client, sql) }
            try await definitions.install(client: client, logger: logger)
            let n = enrollments
            _ = try await time("""
                INSERT INTO crm.contacts (connector, external_id, email, owner, modified_at)
                SELECT 'bench', c::text, 'c' || c || '@example.com', 'owner-' || (c % 50), '2026-01-01' FROM generate_series(1, \(n)) c
                """)
            // Steps 1-3 sent; due ones are due now, the others within two weeks; some paused earlier.
            _ = try await time("""
                INSERT INTO crm.enrollments (connector, contact_external_id, sequence, track, step, track_position, status,
                                             paused_reason, paused_at, remaining_delay, next_step_due_at, last_sent_at, enrolled_at, updated_at)
                SELECT 'bench', c::text, 'whitepaper-followup', 'main', 1 + c % 3, 1 + c % 3,
                       CASE WHEN c % 100 < \(resumePercent) THEN 'paused' ELSE 'active' END,
                       CASE WHEN c % 100 < \(resumePercent) THEN 'deal in sales-owned stage sql' END,
                       CASE WHEN c % 100 < \(resumePercent) THEN timestamptz '2026-11-10' END,
                       CASE WHEN c % 100 < \(resumePercent) THEN interval '2 days' END,
                       CASE WHEN c % 100 < \(resumePercent) THEN NULL
                            WHEN (c / 100) % 100 < \(duePercent) THEN timestamptz '2026-11-18T00:00:00Z'
                            ELSE timestamptz '2026-11-19T00:00:00Z' + (c % 240) * interval '1 hour' END,
                       timestamptz '2026-11-16T01:00:00Z', timestamptz '2026-11-01', timestamptz '2026-11-16T01:00:00Z'
                  FROM generate_series(1, \(n)) c
                """)
            // Deals: the silent ones in `sql` now (and the paused ones back in `mql`: recycled).
            _ = try await time("""
                INSERT INTO crm.deals (connector, external_id, name, stage, canonical_stage, owner, created_at, modified_at)
                SELECT 'bench', c::text, 'Deal ' || c,
                       CASE WHEN c % 100 < \(resumePercent) THEN 'recycled' ELSE 'appointmentscheduled' END,
                       CASE WHEN c % 100 < \(resumePercent) THEN 'mql' ELSE 'sql' END,
                       'owner-' || (c % 50), '2026-11-01', '2026-11-17'
                  FROM generate_series(1, \(n)) c
                 WHERE c % 100 < \(resumePercent) OR (c / 7) % 100 < \(silentPercent)
                """)
            _ = try await time("""
                INSERT INTO crm.deal_contacts (connector, deal_external_id, contact_external_id)
                SELECT connector, external_id, external_id FROM crm.deals
                """)
            _ = try await time("""
                INSERT INTO crm.activities (connector, external_id, kind, owner, contact_external_ids, occurred_at, modified_at)
                SELECT 'bench', 'a' || c, 'call', 'owner-' || (c % 50), ARRAY[((c * 7919) % \(n) + 1)::text],
                       timestamptz '2026-10-01' + (c % 1000) * interval '1 hour', timestamptz '2026-10-01'
                  FROM generate_series(1, \(n / 20)) c
                """)
            _ = try await time("""
                INSERT INTO crm.touches (touch_key, connector, contact_external_id, campaign, kind, occurred_at, url, source)
                SELECT 't' || t, 'bench', ((t * 104729) % \(n) + 1)::text,
                       CASE WHEN t % 4 = 0 THEN 'wp-2026-q4' ELSE 'newsletter' END,
                       (ARRAY['form.submitted', 'email.opened', 'page.viewed', 'email.clicked'])[t % 4 + 1],
                       timestamptz '2026-11-17' + (t % 3600) * interval '1 second',
                       CASE WHEN t % 4 = 2 THEN 'https://example.com/pricing' END, 'bench'
                  FROM generate_series(1::int8, \(touches)) t
                """)
            _ = try await time("VACUUM ANALYZE")

            let baseline = try await time("UPDATE crm.enrollments SET updated_at = updated_at + interval '0 seconds'")
            _ = try await time("VACUUM ANALYZE crm.enrollments")

            let timings = PhaseTimings()
            let start = ContinuousClock.now
            let summary = try await NurtureTick(client: client, logger: logger).run(definitions: definitions, now: now) { name, elapsed in
                timings.add(name, elapsed)
            }
            let seconds = Bench.seconds(since: start)
            let again = ContinuousClock.now
            let second = try await NurtureTick(client: client, logger: logger).run(definitions: definitions, now: now)
            let secondSeconds = Bench.seconds(since: again)
            let backendPeak = try await postgresPeakMiB(client)
            print("baseline: UPDATE of all \(n) enrollment rows in \(Bench.format(baseline)) s")
            print("tick:     \(Bench.format(seconds)) s (\(Bench.format(seconds / baseline, 2))x the baseline): \(summary)")
            print("phases:   \(timings.text)")
            print("again:    a second tick at the same instant in \(Bench.format(secondSeconds)) s: \(second)")
            print("memory:   peak RSS of this process \(Bench.format(Bench.peakMemoryMiB(), 1)) MiB; largest PostgreSQL backend of the database \(Bench.format(backendPeak, 1)) MiB (VmHWM, includes shared buffers it touched)")
            _ = url
        }
    }

    /// VmHWM of the server processes serving this database (same machine only; 0 when unreadable).
    func postgresPeakMiB(_ client: PostgresClient) async throws -> Double {
        let rows = try await client.query("SELECT pid FROM pg_stat_activity WHERE datname = current_database()", logger: Bench.logger).collect()
        var peak = 0.0
        for row in rows {
            let pid = try row.decode(Int32.self)
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
                  let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
                  let kb = Double(line.split(separator: " ").dropFirst().first ?? "") else { continue }
            peak = max(peak, kb / 1024)
        }
        return peak
    }
}

final class PhaseTimings: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [(String, Duration)] = []

    func add(_ name: String, _ elapsed: Duration) {
        lock.withLock { entries.append((name, elapsed)) }
    }

    var text: String {
        lock.withLock {
            entries.map { "\($0.0) \(Bench.format(Double($0.1.components.seconds) + Double($0.1.components.attoseconds) / 1e18))" }
                .joined(separator: ", ")
        }
    }
}
