import Foundation
import Logging
import PostgresNIO

/// One row of `reporting.roi_by_campaign`. Money stays decimal text from PostgreSQL's numeric.
public struct ROIRow: Sendable, Equatable, Codable {
    public var model: String
    public var campaign: String
    public var currency: String
    public var cost: String
    public var influencedDeals: Int
    public var wonDeals: Int
    public var attributedRevenue: String
    public var attributedGrossProfit: String
    public var roi: String?
    public var workspace: String = "default"

    enum CodingKeys: String, CodingKey {
        case model, campaign, currency, cost, roi, workspace
        case influencedDeals = "influenced_deals"
        case wonDeals = "won_deals"
        case attributedRevenue = "attributed_revenue"
        case attributedGrossProfit = "attributed_gross_profit"
    }
}

/// Reads the reporting views.
public struct ReportReader: Sendable {
    public init() {}

    /// `workspace` nil: every workspace's campaigns (a campaign name is only unique within one).
    public func roi(model: String?, workspace: String? = nil, client: PostgresClient, logger: Logger) async throws -> [ROIRow] {
        let rows = try await client.query(
            """
            SELECT model, campaign, currency, cost::text, influenced_deals::int8, won_deals::int8,
                   attributed_revenue::text, attributed_gross_profit::text, roi::text, workspace
              FROM reporting.roi_by_campaign
             WHERE (\(model)::text IS NULL OR model = \(model)::text)
               AND (\(workspace)::text IS NULL OR workspace = \(workspace)::text)
             ORDER BY model, workspace, campaign, currency
            """, logger: logger)
        var result: [ROIRow] = []
        for try await (model, campaign, currency, cost, influenced, won, revenue, profit, roi, workspace) in rows.decode(
            (String, String, String, String, Int64, Int64, String, String, String?, String).self
        ) {
            result.append(ROIRow(
                model: model, campaign: campaign, currency: currency, cost: cost, influencedDeals: Int(influenced),
                wonDeals: Int(won), attributedRevenue: revenue, attributedGrossProfit: profit, roi: roi,
                workspace: workspace))
        }
        return result
    }

    /// Pushes the attribution settings from the config, then recomputes links and credits.
    public func refreshAttribution(
        grossMargin: Decimal, lookbackDays: Int, halfLifeDays: Decimal, client: PostgresClient, logger: Logger
    ) async throws {
        let margin = NSDecimalNumber(decimal: grossMargin).stringValue
        let halfLife = NSDecimalNumber(decimal: halfLifeDays).stringValue
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                """
                UPDATE crm.attribution_settings
                   SET gross_margin = \(margin)::numeric, lookback_days = \(lookbackDays), half_life_days = \(halfLife)::numeric
                 WHERE singleton
                """, logger: logger)
            try await connection.query("SELECT crm.refresh_attribution()", logger: logger)
        }
    }
}
