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
            // From crm.sync_runs, whichever replica ran the sync: every replica reports the same.
            for try await (connector, finished, lag) in try await client.query(
                """
                SELECT connector, extract(epoch FROM max(finished_at))::float8, extract(epoch FROM now() - max(finished_at))::float8
                  FROM crm.sync_runs WHERE status = 'succeeded'
                 GROUP BY connector
                """, logger: logger
            ).decode((String, Double, Double).self) {
                Gauge(label: "crm_sync_last_success_timestamp_seconds", dimensions: [("connector", connector)]).record(finished)
                Gauge(label: "crm_sync_sync_lag_seconds", dimensions: [("connector", connector)]).record(lag)
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
