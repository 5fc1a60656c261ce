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

    /// Pushes the attribution settings from the config, then brings the attribution figures up to
    /// date: with `full`, every deal's links, credits and totals from scratch
    /// (`crm.refresh_attribution()`); without, only the deals changed since the last refresh
    /// (`crm.refresh_attribution_pending()`), which leaves the same rows. A change of settings makes
    /// the incremental refresh a full one by itself. One transaction: readers see the figures before
    /// or after, never half of them.
    public func refreshAttribution(
        grossMargin: Decimal, lookbackDays: Int, halfLifeDays: Decimal, full: Bool = true, client: PostgresClient, logger: Logger
    ) async throws {
        let margin = NSDecimalNumber(decimal: grossMargin).stringValue
        let halfLife = NSDecimalNumber(decimal: halfLifeDays).stringValue
        try await client.withTransaction(logger: logger) { connection in
            // The refreshes' lock before the settings row: a refresh holds the lock and then stamps
            // refreshed_at on that row, so taking them in the other order could deadlock with it.
            try await connection.query("SELECT pg_advisory_xact_lock(hashtext('crm-sync attribution refresh'))", logger: logger)
            try await connection.query(
                """
                UPDATE crm.attribution_settings
                   SET gross_margin = \(margin)::numeric, lookback_days = \(lookbackDays), half_life_days = \(halfLife)::numeric
                 WHERE singleton
                """, logger: logger)
            if full {
                try await connection.query("SELECT crm.refresh_attribution()", logger: logger)
            } else {
                try await connection.query("SELECT crm.refresh_attribution_pending()", logger: logger)
            }
        }
    }

    /// Recomputes the attribution figures of the deals queued since the last refresh (their touches,
    /// stage, amount or links changed), with the settings stored in the database, and returns how many
    /// deals that was (0: the figures were current). When the queue asks for it (settings, models or
    /// currencies changed) this is the full refresh. The commands that write CRM data call it before
    /// they finish, so the reporting views reflect what they wrote.
    @discardableResult
    public func refreshPendingAttribution(client: PostgresClient, logger: Logger) async throws -> Int {
        let rows = try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT crm.refresh_attribution_pending()", logger: logger).collect()
        }
        return Int(try rows.first?.decode(Int64.self) ?? 0)
    }

    /// `reporting.attribution_status()`: per workspace, when the figures were last brought up to date
    /// and how many of its deals changed since.
    public func attributionStatus(client: PostgresClient, logger: Logger) async throws -> [AttributionStatus] {
        var result: [AttributionStatus] = []
        for try await (refreshedAt, pending, workspace) in try await client.query(
            "SELECT refreshed_at, pending_deals, workspace FROM reporting.attribution_status()", logger: logger
        ).decode((Date?, Int64, String).self) {
            result.append(AttributionStatus(workspace: workspace, refreshedAt: refreshedAt, pendingDeals: Int(pending)))
        }
        return result
    }
}

/// One row of `reporting.attribution_status()`. `pendingDeals` 0: the reporting views reflect every
/// committed change of this workspace's deals, touches and links.
public struct AttributionStatus: Sendable, Equatable {
    public var workspace: String
    /// When a refresh (full or incremental) last brought the figures up to date; nil: never.
    public var refreshedAt: Date?
    /// Deals of the workspace changed since and not yet recomputed (all of them while a full
    /// refresh is due).
    public var pendingDeals: Int

    public init(workspace: String, refreshedAt: Date?, pendingDeals: Int) {
        self.workspace = workspace
        self.refreshedAt = refreshedAt
        self.pendingDeals = pendingDeals
    }
}
