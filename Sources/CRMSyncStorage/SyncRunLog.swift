import Foundation
import Logging
import PostgresNIO

/// `crm.sync_runs`: one row per sync run, written when it starts and when it ends, by whichever
/// replica ran it. A run that dies without ending stays `running`; the next run's row says more.
public struct SyncRunLog: Sendable {
    public struct Totals: Sendable {
        public var records: Int
        public var pages: Int
        public var retries: Int
        public init(records: Int, pages: Int, retries: Int) {
            self.records = records
            self.pages = pages
            self.retries = retries
        }
    }

    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Records a run as started; its row id.
    public func start(run: String, connector: String, full: Bool, replica: String) async throws -> Int64 {
        let rows = try await client.query(
            """
            INSERT INTO crm.sync_runs (run_id, connector, full_sync, started_at, status, replica)
            VALUES (\(run), \(connector), \(full), now(), 'running', \(replica))
            RETURNING id
            """, logger: logger
        ).collect()
        return try rows.first!.decode(Int64.self)
    }

    /// Records how the run ended; `error` (one line, no secrets: connector errors never carry
    /// credentials) marks it failed.
    public func finish(id: Int64, totals: Totals, error: String?) async throws {
        try await client.query(
            """
            UPDATE crm.sync_runs
               SET finished_at = now(), status = \(error == nil ? "succeeded" : "failed"), records = \(Int64(totals.records)),
                   pages = \(Int64(totals.pages)), retries = \(Int64(totals.retries)), error = \(error)
             WHERE id = \(id)
            """, logger: logger)
    }
}
