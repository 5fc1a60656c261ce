import Foundation
import Logging
import PostgresNIO

/// Everything the HTML report shows, read from the reporting views in one snapshot.
public struct Dashboard: Sendable {
    public struct FunnelStage: Sendable, Equatable {
        public var connector: String
        public var pipeline: String
        public var stage: String
        public var entered: Int
        public var advanced: Int
        public var conversionRate: Double?
        public var medianDays: Double?
    }

    public struct EmailStep: Sendable, Equatable {
        public var sequence: String
        public var step: Int
        public var sent: Int
        public var openRate: Double?
        public var clickRate: Double?
        public var unsubscribeRate: Double?
    }

    public struct Stalled: Sendable, Equatable {
        public var connector: String
        public var contact: String
        public var owner: String?
        public var stage: String?
        public var daysSinceSalesTouch: Int?
        public var reactivated: Bool
    }

    public struct Breach: Sendable, Equatable {
        public var connector: String
        public var contact: String
        public var owner: String?
        public var handedOffAt: Date
        public var hoursLate: Double?
    }

    public var roi: [ROIRow] = []
    /// Each model's weights, printed with the figures: "U-shaped" means different things in different products.
    public var models: [(model: String, description: String)] = []
    public var unattributedWonDeals = 0
    public var funnel: [FunnelStage] = []
    public var email: [EmailStep] = []
    public var nurture: [(sequence: String, status: String, contacts: Int)] = []
    public var stalled: [Stalled] = []
    public var breaches: [Breach] = []
    public var generatedAt = Date()

    public init() {}
}

/// Reads the dashboard in one repeatable-read transaction, so its figures agree with each other.
public struct DashboardReader: Sendable {
    public init() {}

    /// `workspace` limits every figure to one business unit; nil reads them all.
    public func read(workspace: String? = nil, client: PostgresClient, logger: Logger) async throws -> Dashboard {
        var dashboard = Dashboard()
        dashboard.roi = try await ReportReader().roi(model: nil, workspace: workspace, client: client, logger: logger)
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", logger: logger)
            for try await (model, description) in try await connection.query(
                "SELECT model, description FROM reporting.attribution_models ORDER BY model", logger: logger
            ).decode((String, String).self) {
                dashboard.models.append((model, description))
            }
            for try await count in try await connection.query(
                "SELECT count(*)::int8 FROM reporting.unattributed_won_deals WHERE (\(workspace)::text IS NULL OR workspace = \(workspace)::text)", logger: logger
            ).decode(Int64.self) {
                dashboard.unattributedWonDeals = Int(count)
            }
            for try await (connector, pipeline, stage, entered, advanced, rate, days) in try await connection.query(
                """
                SELECT connector, pipeline, canonical_stage, deals_entered::int8, deals_advanced::int8,
                       conversion_rate::float8, median_days_in_stage::float8
                  FROM reporting.pipeline_funnel WHERE (\(workspace)::text IS NULL OR workspace = \(workspace)::text)
                """, logger: logger
            ).decode((String, String, String, Int64, Int64, Double?, Double?).self) {
                dashboard.funnel.append(.init(connector: connector, pipeline: pipeline, stage: stage, entered: Int(entered),
                                              advanced: Int(advanced), conversionRate: rate, medianDays: days))
            }
            for try await (sequence, step, sent, open, click, unsubscribe) in try await connection.query(
                """
                SELECT sequence, step, sent::int8, open_rate::float8, click_rate::float8, unsubscribe_rate::float8
                  FROM reporting.email_kpis WHERE (\(workspace)::text IS NULL OR workspace = \(workspace)::text) ORDER BY sequence, step
                """, logger: logger
            ).decode((String, Int32, Int64, Double?, Double?, Double?).self) {
                dashboard.email.append(.init(sequence: sequence, step: Int(step), sent: Int(sent), openRate: open,
                                             clickRate: click, unsubscribeRate: unsubscribe))
            }
            for try await (sequence, status, contacts) in try await connection.query(
                "SELECT sequence, status, contacts::int8 FROM reporting.nurture_status WHERE (\(workspace)::text IS NULL OR workspace = \(workspace)::text) ORDER BY sequence, status",
                logger: logger
            ).decode((String, String, Int64).self) {
                dashboard.nurture.append((sequence, status, Int(contacts)))
            }
            for try await (connector, contact, owner, stage, days, reactivated) in try await connection.query(
                """
                SELECT connector, contact_external_id, owner, canonical_stage, days_since_sales_touch, reactivated_at IS NOT NULL
                  FROM reporting.stalled_prospects WHERE (\(workspace)::text IS NULL OR workspace = \(workspace)::text)
                 ORDER BY days_since_sales_touch DESC NULLS LAST, contact_external_id
                """, logger: logger
            ).decode((String, String, String?, String?, Int32?, Bool).self) {
                dashboard.stalled.append(.init(connector: connector, contact: contact, owner: owner, stage: stage,
                                               daysSinceSalesTouch: days.map(Int.init), reactivated: reactivated))
            }
            for try await (connector, contact, owner, handedOff, hours) in try await connection.query(
                """
                SELECT connector, contact_external_id, owner, handed_off_at, hours_late::float8
                  FROM reporting.sla_breaches WHERE (\(workspace)::text IS NULL OR workspace = \(workspace)::text) ORDER BY handed_off_at DESC
                """, logger: logger
            ).decode((String, String, String?, Date, Double?).self) {
                dashboard.breaches.append(.init(connector: connector, contact: contact, owner: owner, handedOffAt: handedOff, hoursLate: hours))
            }
        }
        return dashboard
    }
}
