import CRMSyncCore
import Foundation
import Logging
import PostgresNIO

/// Writes imported programme costs: one transaction per file; importing the same file twice
/// leaves the same rows. Costs are read live by reporting.roi_by_campaign; the import then also
/// recomputes whatever attribution was still queued, so the view is current when it returns.
public struct CostStore: Sendable {
    public init() {}

    struct Row: Encodable {
        var campaign: String, category: String, amount: String, currency: String, period: String
    }

    @discardableResult
    public func importLines(
        _ lines: [CostLine], workspace: String = "default", client: PostgresClient, logger: Logger
    ) async throws -> Int {
        let rows = lines.map {
            Row(campaign: $0.campaign, category: $0.category, amount: NSDecimalNumber(decimal: $0.amount).stringValue,
                currency: $0.currency, period: $0.period)
        }
        let json = try RecordWriter.json(rows)
        let changed = try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                "INSERT INTO crm.workspaces (name) VALUES (\(workspace)) ON CONFLICT (name) DO NOTHING", logger: logger)
            try await connection.query(
                """
                INSERT INTO crm.campaigns (workspace, campaign, name)
                SELECT DISTINCT \(workspace), r.campaign, r.campaign FROM json_to_recordset(\(json)::json) AS r(campaign text)
                ON CONFLICT (workspace, campaign) DO NOTHING
                """, logger: logger)
            let changed = try await connection.query(
                """
                INSERT INTO crm.campaign_costs (workspace, campaign, category, amount, currency, period, source)
                SELECT \(workspace), r.campaign, r.category, r.amount, r.currency, r.period, 'import'
                  FROM json_to_recordset(\(json)::json) AS r(campaign text, category text, amount numeric, currency text, period text)
                ON CONFLICT (workspace, campaign, category, currency, period, source) DO UPDATE SET amount = EXCLUDED.amount
                 WHERE crm.campaign_costs.amount IS DISTINCT FROM EXCLUDED.amount
                RETURNING 1
                """, logger: logger
            ).collect()
            return changed.count
        }
        try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
        return changed
    }
}
