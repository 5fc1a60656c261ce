import Foundation
import Logging
import Metrics
import PostgresNIO

/// Gauges read from the database at scrape time, so every replica reports the same truth: how far
/// behind each connector's sync is, and what the outbox still has to deliver.
struct OperationalGauges: Sendable {
    let client: PostgresClient
    let logger: Logger

    func record() async {
        do {
            for try await (job, lag) in try await client.query(
                """
                SELECT substr(job, 6), extract(epoch FROM now() - finished_at)::float8
                  FROM crm.work_leases WHERE job LIKE 'sync:%' AND finished_at IS NOT NULL
                """, logger: logger
            ).decode((String, Double).self) {
                Gauge(label: "crm_sync_sync_lag_seconds", dimensions: [("connector", job)]).record(lag)
            }
            for try await (pending, dead) in try await client.query(
                """
                SELECT count(*) FILTER (WHERE delivered_at IS NULL AND dead_at IS NULL)::int8,
                       count(*) FILTER (WHERE dead_at IS NOT NULL)::int8
                  FROM crm.outbox
                """, logger: logger
            ).decode((Int64, Int64).self) {
                Gauge(label: "crm_sync_outbox_pending").record(pending)
                Gauge(label: "crm_sync_outbox_dead").record(dead)
            }
        } catch {
            Counter(label: "crm_sync_metrics_errors_total").increment()
        }
    }
}
