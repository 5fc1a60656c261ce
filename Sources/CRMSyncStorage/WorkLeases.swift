import Foundation
import Logging
import PostgresNIO

/// Leases on jobs, in PostgreSQL itself: no coordinator besides the database the workers already
/// share. Every statement is a single-row upsert or update, so two workers racing for one job are
/// serialised by the row lock and exactly one of them wins.
public struct WorkLeases: Sendable {
    public let holder: String
    public let client: PostgresClient
    public let logger: Logger

    public init(holder: String, client: PostgresClient, logger: Logger) {
        self.holder = holder
        self.client = client
        self.logger = logger
    }

    /// A name for this process that other workers and operators can read: host, pid, random part.
    public static func workerName() -> String {
        let host = ProcessInfo.processInfo.hostName
        return "\(host):\(ProcessInfo.processInfo.processIdentifier):\(UUID().uuidString.prefix(8).lowercased())"
    }

    /// Takes the job when nobody holds a live lease and its next round is due.
    public func claim(_ job: String, for ttl: Duration) async throws -> Bool {
        let rows = try await client.query(
            """
            INSERT INTO crm.work_leases (job, holder, expires_at, acquired_at, runs)
            VALUES (\(job), \(holder), now() + make_interval(secs => \(ttl.secondsValue)), now(), 1)
            ON CONFLICT (job) DO UPDATE
               SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at, acquired_at = now(),
                   runs = crm.work_leases.runs + 1
             WHERE crm.work_leases.expires_at < now() AND crm.work_leases.not_before <= now()
            RETURNING holder
            """, logger: logger
        ).collect()
        return !rows.isEmpty
    }

    /// Extends a lease this worker holds; false when it was lost (expired and taken by another).
    public func renew(_ job: String, for ttl: Duration) async throws -> Bool {
        let rows = try await client.query(
            """
            UPDATE crm.work_leases SET expires_at = now() + make_interval(secs => \(ttl.secondsValue))
             WHERE job = \(job) AND holder = \(holder) AND expires_at >= now()
            RETURNING job
            """, logger: logger
        ).collect()
        return !rows.isEmpty
    }

    /// Ends a round: the job is free, and due again after `nextRoundIn`.
    public func finish(_ job: String, nextRoundIn: Duration) async throws {
        try await client.query(
            """
            UPDATE crm.work_leases
               SET holder = NULL, expires_at = now(), finished_at = now(),
                   not_before = now() + make_interval(secs => \(nextRoundIn.secondsValue))
             WHERE job = \(job) AND holder = \(holder)
            """, logger: logger)
    }
}

extension Duration {
    var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
