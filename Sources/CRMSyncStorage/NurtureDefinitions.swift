import CRMSyncCore
import Foundation
import Logging
import PostgresNIO

/// Writes the sequence definitions, their business-day calendars and the connectors' policies into
/// the `crm.nurture_*` tables the tick's SQL reads. Skipped when nothing changed since the last write.
public struct NurtureDefinitions: Sendable {
    public var sequences: [NurtureSequence]
    public var policies: [ConnectorNurturePolicy]
    /// The calendar tables cover these years (business days are counted from the first).
    public static let firstYear = 2020
    public static let lastYear = 2045

    public init(sequences: [NurtureSequence], policies: [ConnectorNurturePolicy]) {
        self.sequences = sequences.sorted { $0.name < $1.name }
        self.policies = policies.sorted { $0.connector < $1.connector }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func time(_ seconds: Int) -> String {
        seconds >= 86_400 ? "24:00:00" : String(format: "%02d:%02d:00", seconds / 3600, seconds % 3600 / 60)
    }

    /// A complete text of everything written, compared with the stored one.
    var fingerprint: String {
        var lines: [String] = []
        for s in sequences {
            lines.append("seq \(s.name) \(s.trigger) \(s.calendar.timeZone.identifier) \(s.calendar.window.text) \(s.calendar.name) \(s.calendar.holidays.sorted()) \(s.calendar.weekend.sorted())")
            for step in s.allSteps { lines.append("  step \(step.track) \(step.position) \(step.step)") }
            lines.append("  \(s.branches) \(s.goals) reenroll \(s.reenrollAfter.map { "\($0)" } ?? "never")")
        }
        for p in policies { lines.append("policy \(p.connector) \(p.salesOwned.map(\.rawValue).sorted()) \(p.policy)") }
        return lines.joined(separator: "\n")
    }

    /// Installs the definitions in one transaction; returns false when they were current.
    @discardableResult
    public func install(client: PostgresClient, logger: Logger) async throws -> Bool {
        let fingerprint = self.fingerprint
        let current = try await client.query("SELECT fingerprint FROM crm.nurture_definitions", logger: logger).collect()
        if let row = current.first, try row.decode(String.self) == fingerprint { return false }
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("LOCK TABLE crm.nurture_definitions IN EXCLUSIVE MODE", logger: logger)
            for table in ["nurture_sequences", "nurture_steps", "nurture_branches", "nurture_goals", "nurture_policies", "nurture_scoring_rules"] {
                try await connection.query(PostgresQuery(unsafeSQL: "DELETE FROM crm.\(table)"), logger: logger)
            }
            var calendars: [String: BusinessCalendar] = [:]
            for s in sequences {
                calendars[s.calendar.name] = s.calendar
                var kind = "event", event: String?, asset: String?, stage: String?, dormant: Int?
                switch s.trigger {
                case .event(let type, let a): event = type; asset = a
                case .stage(let st): kind = "stage"; stage = st.rawValue
                case .dormant(let days): kind = "dormant"; dormant = days
                case .stalled: kind = "stalled"
                }
                try await connection.query(
                    """
                    INSERT INTO crm.nurture_sequences (name, trigger_kind, trigger_event, trigger_asset, trigger_stage, dormant_days,
                                                       time_zone, window_start, window_end, calendar, reenroll_after)
                    VALUES (\(s.name), \(kind), \(event), \(asset), \(stage), \(dormant), \(s.calendar.timeZone.identifier),
                            \(Self.time(s.calendar.window.start))::time, \(Self.time(s.calendar.window.end))::time, \(s.calendar.name),
                            make_interval(secs => \(s.reenrollAfter.map(Self.seconds))))
                    """, logger: logger)
                var trackOfStep: [Int: String] = [:]
                for item in s.allSteps {
                    trackOfStep[item.step.step] = item.track
                    try await connection.query(
                        """
                        INSERT INTO crm.nurture_steps (sequence, track, position, step, delay_business_days, subject)
                        VALUES (\(s.name), \(item.track), \(item.position), \(item.step.step), \(item.step.delayBusinessDays), \(item.step.subject))
                        """, logger: logger)
                }
                for (index, b) in s.branches.enumerated() {
                    try await connection.query(
                        """
                        INSERT INTO crm.nurture_branches (sequence, position, track, after_step, condition, matching, within_days, to_track)
                        VALUES (\(s.name), \(index + 1), \(trackOfStep[b.afterStep] ?? NurtureSequence.mainTrack), \(b.afterStep),
                                \(b.condition.rawValue), \(b.matching), \(b.withinDays), \(b.track))
                        """, logger: logger)
                }
                for (index, goal) in s.goals.enumerated() {
                    var event: String?, asset: String?, stage: String?
                    switch goal {
                    case .event(let type, let a): event = type; asset = a
                    case .stage(let st): stage = st.rawValue
                    }
                    try await connection.query(
                        """
                        INSERT INTO crm.nurture_goals (sequence, position, event, asset, stage)
                        VALUES (\(s.name), \(index + 1), \(event), \(asset), \(stage))
                        """, logger: logger)
                }
            }
            for calendar in calendars.values {
                let rows = calendar.ordinals(from: LocalDate(year: Self.firstYear, month: 1, day: 1),
                                             through: LocalDate(year: Self.lastYear, month: 12, day: 31))
                try await connection.query("DELETE FROM crm.nurture_calendar_days WHERE calendar = \(calendar.name)", logger: logger)
                try await connection.query(
                    """
                    INSERT INTO crm.nurture_calendar_days (calendar, day, ord, business)
                    SELECT \(calendar.name), d::date, o, b
                      FROM unnest(\(rows.map { $0.date.description })::text[], \(rows.map { $0.ordinal })::int8[], \(rows.map { $0.business })::bool[]) AS u(d, o, b)
                    """, logger: logger)
            }
            for p in policies {
                let policy = p.policy
                try await connection.query(
                    """
                    INSERT INTO crm.nurture_policies (connector, sales_owned, activity_window, activities, max_silent, stall_after,
                                                      reactivation_sequence, handoff_threshold, sla, escalate_to)
                    VALUES (\(p.connector), \(p.salesOwned.map(\.rawValue).sorted()),
                            make_interval(secs => \(Self.seconds(policy.salesActivityWindow))),
                            \(policy.silencingActivities.map(\.rawValue).sorted()),
                            make_interval(secs => \(Self.seconds(policy.maxSilentPeriod))),
                            make_interval(secs => \(Self.seconds(policy.stallAfter))),
                            \(policy.reactivationSequence), \(policy.handoffThreshold),
                            make_interval(secs => \(Self.seconds(policy.slaFirstTouch))), \(policy.slaEscalateTo))
                    """, logger: logger)
                for (index, rule) in policy.scoring.enumerated() {
                    try await connection.query(
                        """
                        INSERT INTO crm.nurture_scoring_rules (connector, position, event, matching, points)
                        VALUES (\(p.connector), \(index + 1), \(rule.event), \(rule.matching), \(rule.points))
                        """, logger: logger)
                }
            }
            try await connection.query(
                """
                INSERT INTO crm.nurture_definitions (singleton, fingerprint) VALUES (true, \(fingerprint))
                ON CONFLICT (singleton) DO UPDATE SET fingerprint = EXCLUDED.fingerprint
                """, logger: logger)
        }
        return true
    }
}
