import Foundation
import Logging
import PostgresNIO

/// One claimed row of `crm.outbox`, with the exact bytes to send: the payload with the command's
/// `id`, `type` and `created_at` filled in (the id is the idempotency key, so a retry sends the
/// same bytes under the same key).
public struct OutboxCommand: Sendable, Equatable {
    public var id: String
    public var destination: String
    public var commandType: String
    public var body: Data
    /// Attempts made before this one.
    public var attempts: Int
    public var createdAt: Date

    public init(id: String, destination: String, commandType: String, body: Data, attempts: Int, createdAt: Date) {
        self.id = id
        self.destination = destination
        self.commandType = commandType
        self.body = body
        self.attempts = attempts
        self.createdAt = createdAt
    }
}

/// The outbox table's side of delivery. Every method takes the time from its caller (the
/// dispatcher's injected clock), never from the database's `now()`, so tests can run days of
/// retries in a second.
public struct OutboxStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger
    /// Who claims rows (a worker name); a result is recorded only by the claim's holder.
    public let worker: String

    public init(client: PostgresClient, logger: Logger, worker: String) {
        self.client = client
        self.logger = logger
        self.worker = worker
    }

    /// Claims up to `limit` due rows for `lease`: not delivered, not dead, due, not under another
    /// worker's live claim, and first in line for their contact (no older pending row of the same
    /// contact). Rows another transaction is claiming are skipped, never waited for.
    public func claim(limit: Int, now: Date, lease: Duration) async throws -> [OutboxCommand] {
        let until = now.addingTimeInterval(lease.timeInterval)
        let rows = try await client.query(
            """
            WITH due AS (
                SELECT o.id
                  FROM crm.outbox o
                 WHERE o.delivered_at IS NULL AND o.dead_at IS NULL
                   AND o.next_attempt_at <= \(now)
                   AND (o.claimed_until IS NULL OR o.claimed_until <= \(now))
                   AND NOT EXISTS (
                       SELECT 1 FROM crm.outbox p
                        WHERE p.contact_key = o.contact_key
                          AND p.delivered_at IS NULL AND p.dead_at IS NULL
                          AND (p.created_at, p.id) < (o.created_at, o.id))
                 ORDER BY o.next_attempt_at, o.created_at, o.id
                 LIMIT \(limit)
                 FOR UPDATE OF o SKIP LOCKED
            )
            UPDATE crm.outbox o SET claimed_until = \(until), claimed_by = \(worker)
              FROM due WHERE o.id = due.id
            RETURNING o.id, o.destination, o.command_type,
                      (jsonb_build_object('created_at', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                       || o.payload || jsonb_build_object('id', o.id, 'type', o.command_type))::text,
                      o.attempts, o.created_at
            """, logger: logger
        ).collect()
        return try rows.map { row in
            let (id, destination, type, body, attempts, createdAt) = try row.decode((String, String, String, String, Int32, Date).self)
            return OutboxCommand(id: id, destination: destination, commandType: type, body: Data(body.utf8),
                                 attempts: Int(attempts), createdAt: createdAt)
        }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// Acknowledged: delivered at `now`, with the CRM's id for what it created (if any).
    public func markDelivered(_ id: String, crmRecordID: String?, now: Date) async throws {
        try await client.query(
            """
            UPDATE crm.outbox
               SET delivered_at = \(now), crm_record_id = \(crmRecordID), attempts = attempts + 1, last_attempt_at = \(now),
                   last_error = NULL, claimed_until = NULL, claimed_by = NULL, dead_at = NULL
             WHERE id = \(id) AND delivered_at IS NULL
            """, logger: logger)
    }

    /// Not acknowledged: one more attempt counted, due again at `retryAt`; dead at `now` once
    /// `maxAttempts` attempts failed (or at once when `permanent`). Returns true when it is now dead.
    @discardableResult
    public func markFailed(_ id: String, error: String, now: Date, retryAt: Date, maxAttempts: Int, permanent: Bool = false) async throws -> Bool {
        let rows = try await client.query(
            """
            UPDATE crm.outbox
               SET attempts = attempts + 1, last_attempt_at = \(now), last_error = \(String(error.prefix(500))),
                   next_attempt_at = \(retryAt), claimed_until = NULL, claimed_by = NULL,
                   dead_at = CASE WHEN \(permanent) OR attempts + 1 >= \(maxAttempts) THEN \(now) END
             WHERE id = \(id) AND delivered_at IS NULL AND dead_at IS NULL AND claimed_by = \(worker)
            RETURNING dead_at IS NOT NULL
            """, logger: logger
        ).collect()
        return try rows.first?.decode(Bool.self) ?? false
    }

    /// Revives dead rows (all, or the one with `id`): attempts start over, due at `now`. Returns
    /// the ids revived.
    public func replay(id: String? = nil, now: Date) async throws -> [String] {
        let rows = try await client.query(
            """
            UPDATE crm.outbox
               SET dead_at = NULL, attempts = 0, next_attempt_at = \(now), claimed_until = NULL, claimed_by = NULL
             WHERE dead_at IS NOT NULL AND delivered_at IS NULL AND (\(id)::text IS NULL OR id = \(id))
            RETURNING id
            """, logger: logger
        ).collect()
        return try rows.map { try $0.decode(String.self) }.sorted()
    }

    public struct Backlog: Sendable, Equatable {
        public var pending: Int
        public var dead: Int
        public var delivered: Int
        public init(pending: Int, dead: Int, delivered: Int) {
            self.pending = pending
            self.dead = dead
            self.delivered = delivered
        }
    }

    public func backlog() async throws -> Backlog {
        let rows = try await client.query(
            """
            SELECT count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL)::int8,
                   count(*) FILTER (WHERE dead_at IS NOT NULL AND delivered_at IS NULL)::int8,
                   count(*) FILTER (WHERE delivered_at IS NOT NULL)::int8
              FROM crm.outbox
            """, logger: logger
        ).collect()
        let (pending, dead, delivered) = try rows[0].decode((Int64, Int64, Int64).self)
        return Backlog(pending: Int(pending), dead: Int(dead), delivered: Int(delivered))
    }
}

extension Duration {
    var timeInterval: TimeInterval { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
