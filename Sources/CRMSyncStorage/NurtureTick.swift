import CRMSyncCore
import Foundation
import Logging
import PostgresNIO

/// One pass of the nurture engine at an instant passed in (never the system clock), set-based in
/// PostgreSQL, one transaction per phase. Every decision writes its outbox command in the same
/// statement as the state change, under a deterministic id, so running the tick twice at the same
/// `now` changes nothing the second time.
public struct NurtureTick: Sendable {
    public struct Summary: Sendable, Equatable, CustomStringConvertible {
        public var enrolled = 0, branched = 0, sent = 0, paused = 0, resumed = 0, exited = 0
        public var stalled = 0, handedOff = 0, breaches = 0

        public init() {}

        public var description: String {
            "enrolled \(enrolled), sent \(sent), branched \(branched), paused \(paused), resumed \(resumed), exited \(exited), "
                + "stalled \(stalled), handed off \(handedOff), SLA breaches \(breaches)"
        }
    }

    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Installs the definitions (when they changed), then runs every phase at `now`.
    /// `phaseTimed` hears each phase's name and wall time (for the benchmark).
    public func run(definitions: NurtureDefinitions, now: Date, phaseTimed: (@Sendable (String, Duration) -> Void)? = nil) async throws -> Summary {
        try await definitions.install(client: client, logger: logger)
        var summary = Summary()
        func phase<T: Sendable>(_ name: String = #function, _ body: (PostgresConnection) async throws -> T) async throws -> T {
            let clock = ContinuousClock()
            let start = clock.now
            let result = try await client.withTransaction(logger: logger) { connection in
                // Two ticks at once (the CLI beside `serve`) take turns phase by phase: each phase reads
                // state and writes decisions from it, which must not interleave.
                try await connection.query("SELECT pg_advisory_xact_lock(hashtext('crm-sync nurture tick'))", logger: logger)
                // Every phase is a batch over many enrollments: a nested loop chosen on a misestimated
                // CTE costs minutes at a million rows, a hash join never does.
                try await connection.query("SET LOCAL enable_nestloop = off", logger: logger)
                try await connection.query("SET LOCAL work_mem = '128MB'", logger: logger)
                // enable_nestloop = off inflates the estimated costs: JIT would compile every statement for a second.
                try await connection.query("SET LOCAL jit = off", logger: logger)
                return try await body(connection)
            }
            phaseTimed?(name, clock.now - start)
            return result
        }
        // Order matters: exits before anything is sent; hand-offs and stalls (which enrol in the
        // reactivation sequence) before the silent-period check and the sends, so one tick settles.
        summary.enrolled = try await phase("enroll") { try await enroll(now, $0) }
        summary.exited = try await phase("exits") { try await exits(now, $0) }
        summary.handedOff = try await phase("score") { try await score(now, $0) }
        summary.stalled = try await phase("stall") { try await stall(now, $0) }
        (summary.paused, summary.resumed) = try await phase("silence") { try await silence(now, $0) }
        summary.branched = try await phase("branch") { try await branch(now, $0) }
        summary.sent = try await phase("advance") { try await advance(now, $0) }
        summary.breaches = try await phase("sla") { try await sla(now, $0) }
        return summary
    }

    private func count(_ query: PostgresQuery, _ connection: PostgresConnection) async throws -> Int {
        let rows = try await connection.query(query, logger: logger).collect()
        return try Int(rows.first?.decode(Int64.self) ?? 0)
    }

    // MARK: (a) enrolment

    /// Contacts whose trigger fired: engagement events not consumed yet, deals that entered the
    /// trigger stage in the last 30 days, contacts dormant for the sequence's days. A contact runs a
    /// sequence once, or again when its `reenroll_after` has passed since the last run ended and
    /// the trigger fired after that; never while a run is live, never when suppressed.
    func enroll(_ now: Date, _ connection: PostgresConnection) async throws -> Int {
        try await count(
            """
            WITH taken AS (
                -- consumed in this transaction: a touch committed later waits for the next tick
                DELETE FROM crm.nurture_pending_touches q WHERE q.phase = 'enroll' RETURNING q.touch_id
            ), fresh AS (
                SELECT t.connector, t.contact_external_id, t.kind, t.campaign, t.url, t.occurred_at
                  FROM taken JOIN crm.touches t ON t.id = taken.touch_id
                 WHERE t.contact_external_id IS NOT NULL
            ), fired AS (
                -- when the trigger fired: a contact re-enters only on a firing after its last run ended
                SELECT f.connector, f.contact_external_id, s.name AS sequence, f.occurred_at AS fired_at
                  FROM fresh f
                  JOIN crm.nurture_sequences s ON s.trigger_kind = 'event' AND s.trigger_event = f.kind
                   AND (s.trigger_asset IS NULL OR f.campaign = s.trigger_asset OR strpos(coalesce(f.url, ''), s.trigger_asset) > 0)
                UNION ALL
                SELECT dc.connector, dc.contact_external_id, s.name,
                       coalesce((SELECT max(h.entered_at) FROM crm.stage_history h
                                  WHERE h.connector = d.connector AND h.deal_external_id = d.external_id
                                    AND h.canonical_stage = s.trigger_stage), d.modified_at)
                  FROM crm.nurture_sequences s
                  JOIN crm.deals d ON d.canonical_stage = s.trigger_stage AND NOT d.deleted
                  JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
                 WHERE s.trigger_kind = 'stage' AND d.modified_at <= $1 AND d.modified_at > $1 - interval '30 days'
                UNION ALL
                SELECT c.connector, c.external_id, s.name, $1::timestamptz
                  FROM crm.nurture_sequences s
                  JOIN crm.contacts c ON NOT c.deleted
                 WHERE s.trigger_kind = 'dormant'
                   AND EXISTS (SELECT 1 FROM crm.touches t
                                WHERE t.connector = c.connector AND t.contact_external_id = c.external_id AND t.occurred_at <= $1)
                   AND NOT EXISTS (SELECT 1 FROM crm.touches t
                                    WHERE t.connector = c.connector AND t.contact_external_id = c.external_id
                                      AND t.occurred_at > $1 - make_interval(days => s.dormant_days))
                   AND NOT EXISTS (SELECT 1 FROM crm.activities a
                                    WHERE a.connector = c.connector AND a.contact_external_ids @> ARRAY[c.external_id] AND NOT a.deleted
                                      AND a.occurred_at > $1 - make_interval(days => s.dormant_days))
            ), candidates AS (
                SELECT connector, contact_external_id, sequence, max(fired_at) AS fired_at FROM fired GROUP BY 1, 2, 3
            ), input AS (
                SELECT row_number() OVER () AS id, c.connector, c.contact_external_id, c.sequence,
                       $1::timestamptz AS from_ts, st.delay_business_days AS days
                  FROM candidates c
                  JOIN crm.nurture_sequences s ON s.name = c.sequence
                  JOIN crm.nurture_steps st ON st.sequence = c.sequence AND st.track = 'main' AND st.position = 1
                 WHERE NOT EXISTS (SELECT 1 FROM crm.nurture_suppressions x
                                    WHERE x.connector = c.connector AND x.contact_external_id = c.contact_external_id)
                   -- once per contact, unless the sequence allows re-entry a while after the last run ended
                   AND NOT EXISTS (SELECT 1 FROM crm.enrollments e
                                    WHERE e.connector = c.connector AND e.contact_external_id = c.contact_external_id
                                      AND e.sequence = c.sequence AND e.status IN ('completed', 'exited')
                                      AND (s.reenroll_after IS NULL OR e.updated_at > $1 - s.reenroll_after
                                           OR c.fired_at <= e.updated_at))
            ), \(NurtureSQL.due("due", input: "input")), inserted AS (
                INSERT INTO crm.enrollments (connector, contact_external_id, sequence, track, step, status, next_step_due_at,
                                             enrolled_at, updated_at)
                SELECT i.connector, i.contact_external_id, i.sequence, 'main', 0, 'active', d.due, $1, $1
                  FROM input i JOIN due d ON d.id = i.id
                ON CONFLICT (connector, contact_external_id, sequence) WHERE status IN ('active', 'paused') DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM inserted)
            """.with(now: now), connection)
    }

    // MARK: (b) goals and exits

    /// Unsubscribed or hard-bounced contacts leave every sequence and are suppressed for good (a
    /// soft bounce changes nothing: the next step tries again); a closed-won deal ends every
    /// sequence; a sequence's goals (events, deal stages) end it.
    func exits(_ now: Date, _ connection: PostgresConnection) async throws -> Int {
        try await count(
            """
            WITH signals AS (
                SELECT t.connector, t.contact_external_id, NULL::text AS sequence,
                       CASE t.kind WHEN 'email.unsubscribed' THEN 'unsubscribed' ELSE 'bounced hard' END AS reason,
                       1 AS priority, t.occurred_at AS since
                  FROM crm.touches t
                 WHERE (t.kind = 'email.unsubscribed' OR (t.kind = 'email.bounced' AND t.bounce IS DISTINCT FROM 'soft'))
                   AND t.contact_external_id IS NOT NULL
                   AND t.occurred_at <= $1
                UNION ALL
                SELECT dc.connector, dc.contact_external_id, NULL, 'deal closed won', 2, d.modified_at
                  FROM crm.deals d JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
                 WHERE d.canonical_stage = 'closed_won' AND NOT d.deleted AND d.modified_at <= $1
                UNION ALL
                SELECT t.connector, t.contact_external_id, g.sequence, 'goal: ' || t.kind || coalesce(' ' || g.asset, ''), 3, t.occurred_at
                  FROM crm.nurture_goals g
                  JOIN crm.touches t ON t.kind = g.event
                   AND (g.asset IS NULL OR t.campaign = g.asset OR strpos(coalesce(t.url, ''), g.asset) > 0)
                 WHERE t.contact_external_id IS NOT NULL AND t.occurred_at <= $1
                UNION ALL
                SELECT dc.connector, dc.contact_external_id, g.sequence, 'goal: deal reached ' || d.canonical_stage, 3, d.modified_at
                  FROM crm.nurture_goals g
                  JOIN crm.deals d ON d.canonical_stage = g.stage AND NOT d.deleted
                  JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
                 WHERE d.modified_at <= $1
            ), suppressed AS (
                INSERT INTO crm.nurture_suppressions (connector, contact_external_id, reason, suppressed_at)
                SELECT DISTINCT ON (connector, contact_external_id) connector, contact_external_id, reason, since
                  FROM signals WHERE priority = 1
                 ORDER BY connector, contact_external_id, since
                ON CONFLICT DO NOTHING
                RETURNING 1
            ), hits AS (
                SELECT DISTINCT ON (e.id) e.id, s.reason
                  FROM crm.enrollments e
                  JOIN signals s ON s.connector = e.connector AND s.contact_external_id = e.contact_external_id
                   AND (s.sequence IS NULL OR s.sequence = e.sequence)
                 WHERE e.status IN ('active', 'paused') AND (s.priority = 1 OR s.since >= e.enrolled_at)
                 ORDER BY e.id, s.priority, s.since
            ), exited AS (
                UPDATE crm.enrollments e
                   SET status = 'exited', exit_reason = h.reason, next_step_due_at = NULL, remaining_delay = NULL,
                       updated_at = $1
                  FROM hits h WHERE e.id = h.id
                RETURNING e.id, e.connector, e.contact_external_id, e.sequence, e.step, h.reason
            ), commands AS (
                \(NurtureSQL.insertCommand(
                    type: "exit", destination: "'ma'", idKey: "'exit|' || x.id", from: "exited x", now: "$1",
                    sequence: "x.sequence", step: "x.step", reason: "x.reason"))
            )
            SELECT (SELECT count(*) FROM exited)
            """.with(now: now), connection)
    }

    // MARK: (c) silent periods

    /// Pauses the active enrollments of contacts sales owns now (a deal in a sales-owned stage, a
    /// recent call/meeting/sales e-mail), keeping the remaining delay; resumes those whose silent
    /// period ended with that delay from now, moved into the next send window.
    func silence(_ now: Date, _ connection: PostgresConnection) async throws -> (Int, Int) {
        // Who is silent now, once for both statements: a deal in a sales-owned stage, or a recent
        // call/meeting/sales e-mail.
        try await connection.query(
            """
            CREATE TEMPORARY TABLE nurture_silent ON COMMIT DROP AS
            SELECT DISTINCT ON (e.id) e.id, s.reason
              FROM crm.enrollments e
              JOIN (
                  SELECT dc.connector, dc.contact_external_id,
                         'deal ' || d.external_id || ' in sales-owned stage ' || d.canonical_stage AS reason, 1 AS priority, true AS by_stage
                    FROM crm.deals d
                    JOIN crm.nurture_policies p ON p.connector = d.connector
                    JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
                   WHERE NOT d.deleted AND d.canonical_stage = ANY (p.sales_owned)
                  UNION ALL
                  SELECT a.connector, c.id, 'sales ' || a.kind || ' within the activity window', 2, false
                    FROM crm.activities a
                    JOIN crm.nurture_policies p ON p.connector = a.connector
                   CROSS JOIN LATERAL unnest(a.contact_external_ids) AS c(id)
                   WHERE NOT a.deleted AND a.kind = ANY (p.activities)
                     AND a.occurred_at <= $1 AND a.occurred_at > $1 - p.activity_window
              ) s ON s.connector = e.connector AND s.contact_external_id = e.contact_external_id
              LEFT JOIN crm.nurture_policies p ON p.connector = e.connector
             WHERE e.status IN ('active', 'paused')
               -- a stalled prospect's reactivation runs although its deal sits in a sales-owned stage
               AND NOT (s.by_stage AND e.sequence IS NOT DISTINCT FROM p.reactivation_sequence)
             ORDER BY e.id, s.priority
            """.with(now: now), logger: logger)
        try await connection.query("ANALYZE nurture_silent", logger: logger)
        let paused = try await count(
            """
            WITH paused AS (
                UPDATE crm.enrollments e
                   SET status = 'paused', paused_reason = s.reason, paused_at = $1, updated_at = $1,
                       remaining_delay = greatest(coalesce(e.next_step_due_at, $1) - $1, interval '0')
                  FROM nurture_silent s WHERE e.id = s.id AND e.status = 'active'
                RETURNING e.id, e.connector, e.contact_external_id, e.sequence, e.step, s.reason
            ), commands AS (
                \(NurtureSQL.insertCommand(
                    type: "pause", destination: "'ma'", idKey: "'pause|' || x.id || '|' || extract(epoch FROM $1)", from: "paused x", now: "$1",
                    sequence: "x.sequence", step: "x.step", reason: "x.reason"))
            )
            SELECT (SELECT count(*) FROM paused)
            """.with(now: now), connection)
        let resumed = try await count(
            """
            WITH input AS (
                SELECT e.id, e.sequence, $1 + coalesce(e.remaining_delay, interval '0') AS from_ts, 0 AS days
                  FROM crm.enrollments e
                 WHERE e.status = 'paused' AND e.paused_at < $1 AND NOT EXISTS (SELECT 1 FROM nurture_silent s WHERE s.id = e.id)
            ), \(NurtureSQL.due("due", input: "input")), resumed AS (
                UPDATE crm.enrollments e
                   SET status = 'active', next_step_due_at = d.due, paused_reason = NULL, paused_at = NULL,
                       remaining_delay = NULL, updated_at = $1
                  FROM due d WHERE e.id = d.id
                RETURNING e.id, e.connector, e.contact_external_id, e.sequence, e.step, e.next_step_due_at
            ), commands AS (
                \(NurtureSQL.insertCommand(
                    type: "resume", destination: "'ma'", idKey: "'resume|' || x.id || '|' || extract(epoch FROM $1)", from: "resumed x", now: "$1",
                    sequence: "x.sequence", step: "x.step", reason: "'silent period ended'",
                    extra: "jsonb_build_object('next_step_due_at', to_char(x.next_step_due_at AT TIME ZONE 'UTC', \(NurtureSQL.isoUTC)))"))
            )
            SELECT (SELECT count(*) FROM resumed)
            """.with(now: now), connection)
        return (paused, resumed)
    }

    // MARK: (d) branches and due steps

    /// Switches enrollments whose last step's branch condition held (opened, not opened within the
    /// window, clicked a link, viewed a page) to the branch's track; its first step is due next.
    func branch(_ now: Date, _ connection: PostgresConnection) async throws -> Int {
        try await count(
            """
            WITH candidates AS (
                SELECT e.id, e.connector, e.contact_external_id, e.sequence, e.step, e.last_sent_at, b.position, b.condition,
                       b.matching, b.to_track, e.last_sent_at + make_interval(days => b.within_days) AS window_end
                  FROM crm.enrollments e
                  JOIN crm.nurture_branches b ON b.sequence = e.sequence AND b.track = e.track AND b.after_step = e.step
                 WHERE e.status = 'active' AND e.last_sent_at < $1
            ), engaged AS (
                -- the behaviour each condition looks for, inside the wait window (not_opened: an open)
                SELECT DISTINCT c.id, c.position
                  FROM candidates c
                  JOIN crm.touches t ON t.connector = c.connector AND t.contact_external_id = c.contact_external_id
                   AND t.occurred_at >= c.last_sent_at AND t.occurred_at <= least($1, c.window_end)
                 WHERE CASE c.condition
                       WHEN 'viewed' THEN t.kind = 'page.viewed' AND strpos(coalesce(t.url, ''), c.matching) > 0
                       WHEN 'clicked' THEN t.kind = 'email.clicked' AND t.sequence = c.sequence AND t.step = c.step
                            AND strpos(coalesce(t.url, ''), c.matching) > 0
                       ELSE t.kind IN ('email.opened', 'email.clicked') AND t.sequence = c.sequence AND t.step = c.step
                       END
            ), fired AS (
                SELECT DISTINCT ON (c.id) c.id, c.sequence, c.to_track
                  FROM candidates c
                  LEFT JOIN engaged g ON g.id = c.id AND g.position = c.position
                 WHERE CASE WHEN c.condition = 'not_opened' THEN g.id IS NULL AND $1 >= c.window_end ELSE g.id IS NOT NULL END
                 ORDER BY c.id, c.position
            ), input AS (
                SELECT f.id, f.sequence, f.to_track, $1::timestamptz AS from_ts, st.delay_business_days AS days
                  FROM fired f JOIN crm.nurture_steps st ON st.sequence = f.sequence AND st.track = f.to_track AND st.position = 1
            ), \(NurtureSQL.due("due", input: "input")), switched AS (
                UPDATE crm.enrollments e
                   SET track = i.to_track, track_position = 0, next_step_due_at = d.due, updated_at = $1
                  FROM input i JOIN due d ON d.id = i.id WHERE e.id = i.id
                RETURNING 1
            )
            SELECT count(*) FROM switched
            """.with(now: now), connection)
    }

    /// Sends at most one step per enrollment: the next step of its track whose due time has come
    /// (and never a second one at the same instant), and only when `now` is inside the sequence's
    /// send window on a business day of its calendar (local time in its zone; no weekend, no
    /// holiday). A step found due outside the window (a tick at night, on a weekend or holiday, the
    /// first one after an outage) is not sent: its due time moves to the next window opening, where
    /// the first tick sends it. The command's `created_at` is `now`, the instant it was sent. The
    /// step after it is due its delay after *this* send, so a late or resumed enrollment never
    /// sends missed steps in a burst.
    func advance(_ now: Date, _ connection: PostgresConnection) async throws -> Int {
        try await count(
            """
            WITH found AS (
                SELECT e.id, e.sequence, e.track, st.step, st.subject, nx.delay_business_days AS next_delay
                  FROM crm.enrollments e
                  JOIN crm.nurture_steps st ON st.sequence = e.sequence AND st.track = e.track AND st.position = e.track_position + 1
                  LEFT JOIN crm.nurture_steps nx ON nx.sequence = e.sequence AND nx.track = e.track AND nx.position = e.track_position + 2
                 WHERE e.status = 'active' AND e.next_step_due_at <= $1 AND (e.last_sent_at IS NULL OR e.last_sent_at < $1)
            ), opening_input AS (
                -- zero business days from now: now itself when the window is open, else its next opening
                SELECT f.id, f.sequence, $1::timestamptz AS from_ts, 0 AS days FROM found f
            ), \(NurtureSQL.due("opening", input: "opening_input")), deferred AS (
                UPDATE crm.enrollments e SET next_step_due_at = o.due, updated_at = $1
                  FROM opening o WHERE e.id = o.id AND o.due > $1
                RETURNING 1
            ), ready AS (
                SELECT f.* FROM found f JOIN opening o ON o.id = f.id WHERE o.due <= $1
            ), input AS (
                SELECT r.id, r.sequence, $1::timestamptz AS from_ts, r.next_delay AS days FROM ready r WHERE r.next_delay IS NOT NULL
            ), \(NurtureSQL.due("due", input: "input")), sent AS (
                UPDATE crm.enrollments e
                   SET step = r.step, track_position = e.track_position + 1, last_sent_at = $1, updated_at = $1,
                       status = CASE WHEN r.next_delay IS NULL THEN 'completed' ELSE 'active' END,
                       next_step_due_at = d.due
                  FROM ready r LEFT JOIN due d ON d.id = r.id
                 WHERE e.id = r.id
                RETURNING e.id, e.connector, e.contact_external_id, e.sequence, r.step, r.track, r.subject
            ), commands AS (
                \(NurtureSQL.insertCommand(
                    type: "send_step", destination: "'ma'", idKey: "'send_step|' || x.id || '|' || x.step", from: "sent x", now: "$1",
                    sequence: "x.sequence", step: "x.step", reason: "NULL",
                    extra: "jsonb_build_object('track', x.track, 'subject', x.subject)"))
            )
            SELECT (SELECT count(*) FROM sent)
            """.with(now: now), connection)
    }

    // MARK: (f) scoring and hand-off

    /// Adds the points of the touches not scored yet (each once); a contact crossing its
    /// connector's threshold is handed to sales: a `crm.handoffs` row with its SLA clock, a
    /// `handoff` command to the MA tool and a `create_task` for the owner in the CRM.
    func score(_ now: Date, _ connection: PostgresConnection) async throws -> Int {
        try await connection.query(
            """
            WITH taken AS (
                DELETE FROM crm.nurture_pending_touches q WHERE q.phase = 'scoring' RETURNING q.touch_id
            ), points AS (
                SELECT t.connector, t.contact_external_id, sum(r.points) AS points
                  FROM taken
                  JOIN crm.touches t ON t.id = taken.touch_id
                  JOIN crm.nurture_scoring_rules r ON r.connector = t.connector AND r.event = t.kind
                   AND (r.matching IS NULL OR strpos(coalesce(t.url, ''), r.matching) > 0 OR t.campaign = r.matching)
                 WHERE t.contact_external_id IS NOT NULL
                 GROUP BY 1, 2
            ), scored AS (
                INSERT INTO crm.lead_scores (connector, contact_external_id, score, updated_at)
                SELECT connector, contact_external_id, points, $1 FROM points
                ON CONFLICT (connector, contact_external_id)
                DO UPDATE SET score = crm.lead_scores.score + EXCLUDED.score, updated_at = EXCLUDED.updated_at
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM scored), (SELECT count(*) FROM taken)
            """.with(now: now), logger: logger)
        return try await count(
            """
            WITH ready AS (
                SELECT s.connector, s.contact_external_id, s.score, p.sla,
                       coalesce(c.owner, (SELECT d.owner FROM crm.deal_contacts dc
                                            JOIN crm.deals d ON d.connector = dc.connector AND d.external_id = dc.deal_external_id
                                           WHERE dc.connector = s.connector AND dc.contact_external_id = s.contact_external_id
                                             AND NOT d.deleted AND d.owner IS NOT NULL
                                           ORDER BY d.modified_at DESC LIMIT 1)) AS owner
                  FROM crm.lead_scores s
                  JOIN crm.nurture_policies p ON p.connector = s.connector
                  LEFT JOIN crm.contacts c ON c.connector = s.connector AND c.external_id = s.contact_external_id
                 WHERE s.score >= p.handoff_threshold
                   AND NOT EXISTS (SELECT 1 FROM crm.handoffs h
                                    WHERE h.connector = s.connector AND h.contact_external_id = s.contact_external_id)
            ), handed AS (
                INSERT INTO crm.handoffs (connector, contact_external_id, owner, score, handed_off_at, sla_due_at)
                SELECT connector, contact_external_id, owner, score, $1, $1 + sla FROM ready
                RETURNING connector, contact_external_id, owner, score, sla_due_at
            ), handoff AS (
                \(NurtureSQL.insertCommand(
                    type: "handoff", destination: "'ma'", idKey: "'handoff|' || x.connector || '|' || x.contact_external_id", from: "handed x",
                    now: "$1", sequence: "NULL", step: "NULL", reason: "'score ' || x.score || ' reached the hand-off threshold'",
                    extra: "jsonb_build_object('score', x.score, 'owner', x.owner, 'sla_due_at', to_char(x.sla_due_at AT TIME ZONE 'UTC', \(NurtureSQL.isoUTC)))"))
            ), task AS (
                \(NurtureSQL.insertCommand(
                    type: "create_task", destination: "x.connector", idKey: "'create_task|handoff|' || x.connector || '|' || x.contact_external_id",
                    from: "handed x", now: "$1", sequence: "NULL", step: "NULL", reason: "'handoff'",
                    extra: NurtureSQL.taskFields(owner: "x.owner", deal: "NULL", subject: "'Hot lead (score ' || x.score || '): call within the SLA'", due: "x.sla_due_at")))
            )
            SELECT (SELECT count(*) FROM handed)
            """.with(now: now), connection)
    }

    // MARK: (e) stalled prospects

    /// A qualified prospect (handed off, or a deal in a sales-owned stage) without sales activity for
    /// the stall threshold, or paused longer than the maximum silent period, is flagged once (until a
    /// sales activity clears it), enrolled in the reactivation sequence, and its owner gets a task.
    func stall(_ now: Date, _ connection: PostgresConnection) async throws -> Int {
        try await connection.query(
            """
            UPDATE crm.stalled s SET cleared_at = $1
             WHERE s.cleared_at IS NULL
               AND EXISTS (SELECT 1 FROM crm.activities a
                            WHERE a.connector = s.connector AND a.contact_external_ids @> ARRAY[s.contact_external_id]
                              AND NOT a.deleted AND a.occurred_at > s.flagged_at AND a.occurred_at <= $1
                              AND a.kind IN ('call', 'meeting', 'email'))
            """.with(now: now), logger: logger)
        return try await count(
            """
            WITH qualified AS (
                SELECT dc.connector, dc.contact_external_id, d.external_id AS deal, d.owner, d.canonical_stage, d.modified_at AS since
                  FROM crm.deals d
                  JOIN crm.nurture_policies p ON p.connector = d.connector
                  JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
                 WHERE NOT d.deleted AND d.canonical_stage = ANY (p.sales_owned) AND d.modified_at <= $1
                UNION ALL
                SELECT h.connector, h.contact_external_id, NULL, h.owner, NULL, h.handed_off_at FROM crm.handoffs h
            ), last_touch AS (
                SELECT a.connector, c.id AS contact_external_id, max(a.occurred_at) AS at
                  FROM crm.activities a
                  JOIN crm.nurture_policies p ON p.connector = a.connector
                 CROSS JOIN LATERAL unnest(a.contact_external_ids) AS c(id)
                 WHERE NOT a.deleted AND a.kind = ANY (p.activities) AND a.occurred_at <= $1
                 GROUP BY 1, 2
            ), long_silent AS (
                SELECT e.connector, e.contact_external_id, min(e.paused_at) AS since
                  FROM crm.enrollments e JOIN crm.nurture_policies p ON p.connector = e.connector
                 WHERE e.status = 'paused' AND e.paused_at < $1 - p.max_silent
                 GROUP BY 1, 2
            ), stalled AS (
                SELECT DISTINCT ON (q.connector, q.contact_external_id)
                       q.connector, q.contact_external_id, q.deal, q.owner, q.canonical_stage,
                       -- never touched: counted from when it was qualified
                       coalesce(greatest(lt.at, q.since), q.since) AS last_at,
                       p.reactivation_sequence
                  FROM qualified q
                  JOIN crm.nurture_policies p ON p.connector = q.connector
                  LEFT JOIN last_touch lt ON lt.connector = q.connector AND lt.contact_external_id = q.contact_external_id
                  LEFT JOIN long_silent ls ON ls.connector = q.connector AND ls.contact_external_id = q.contact_external_id
                 WHERE greatest(lt.at, q.since) < $1 - p.stall_after OR ls.since IS NOT NULL
                 ORDER BY q.connector, q.contact_external_id, q.deal NULLS LAST, q.since DESC
            ), fresh AS (
                SELECT s.*, row_number() OVER () AS id FROM stalled s
                 WHERE NOT EXISTS (SELECT 1 FROM crm.stalled x
                                    WHERE x.connector = s.connector AND x.contact_external_id = s.contact_external_id AND x.cleared_at IS NULL)
                   AND NOT EXISTS (SELECT 1 FROM crm.nurture_suppressions x
                                    WHERE x.connector = s.connector AND x.contact_external_id = s.contact_external_id)
            ), flagged AS (
                INSERT INTO crm.stalled (connector, contact_external_id, owner, canonical_stage, last_sales_touch_at, flagged_at, reactivated_at)
                SELECT connector, contact_external_id, owner, canonical_stage, last_at, $1,
                       CASE WHEN reactivation_sequence IS NOT NULL THEN $1 END
                  FROM fresh
                RETURNING 1
            ), input AS (
                SELECT f.id, f.connector, f.contact_external_id, f.reactivation_sequence AS sequence, $1::timestamptz AS from_ts,
                       st.delay_business_days AS days
                  FROM fresh f
                  JOIN crm.nurture_steps st ON st.sequence = f.reactivation_sequence AND st.track = 'main' AND st.position = 1
            ), \(NurtureSQL.due("due", input: "input")), enrolled AS (
                INSERT INTO crm.enrollments (connector, contact_external_id, sequence, track, step, status, next_step_due_at,
                                             enrolled_at, updated_at)
                SELECT i.connector, i.contact_external_id, i.sequence, 'main', 0, 'active', d.due, $1, $1
                  FROM input i JOIN due d ON d.id = i.id
                -- a new run (a new id, so its commands are new ones); none while one is live
                ON CONFLICT (connector, contact_external_id, sequence) WHERE status IN ('active', 'paused') DO NOTHING
                RETURNING 1
            ), task AS (
                \(NurtureSQL.insertCommand(
                    type: "create_task", destination: "x.connector",
                    idKey: "'create_task|stalled|' || x.connector || '|' || x.contact_external_id || '|' || extract(epoch FROM $1)",
                    from: "fresh x", now: "$1", sequence: "x.reactivation_sequence", step: "NULL", reason: "'stalled'",
                    extra: NurtureSQL.taskFields(
                        owner: "x.owner", deal: "x.deal",
                        subject: "'Stalled prospect: no sales activity since ' || to_char(x.last_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
                        due: "$1 + interval '1 day'")))
            ), reactivate AS (
                \(NurtureSQL.insertCommand(
                    type: "reactivate", destination: "'ma'",
                    idKey: "'reactivate|' || x.connector || '|' || x.contact_external_id || '|' || extract(epoch FROM $1)",
                    from: "fresh x", now: "$1", sequence: "x.reactivation_sequence", step: "NULL", reason: "'stalled'"))
            )
            SELECT (SELECT count(*) FROM flagged)
            """.with(now: now), connection)
    }

    // MARK: (g) SLA

    /// Records each hand-off's first call or meeting by its owner, marks a breach when none came by
    /// the SLA and escalates it (a CRM task, once per hand-off), and keeps an open breach's clock
    /// running for `reporting.sla_breaches`.
    func sla(_ now: Date, _ connection: PostgresConnection) async throws -> Int {
        try await connection.query(
            """
            UPDATE crm.handoffs h SET first_sales_touch_at = f.at
              FROM (SELECT h.connector, h.contact_external_id, h.handed_off_at, min(a.occurred_at) AS at
                      FROM crm.handoffs h
                      JOIN crm.activities a ON a.connector = h.connector AND a.contact_external_ids @> ARRAY[h.contact_external_id]
                       AND NOT a.deleted AND a.kind IN ('call', 'meeting')
                       AND a.occurred_at >= h.handed_off_at AND a.occurred_at <= $1
                       AND (h.owner IS NULL OR a.owner IS NULL OR a.owner = h.owner)
                     WHERE h.first_sales_touch_at IS NULL
                     GROUP BY 1, 2, 3) f
             WHERE h.connector = f.connector AND h.contact_external_id = f.contact_external_id AND h.handed_off_at = f.handed_off_at
            """.with(now: now), logger: logger)
        let breaches = try await count(
            """
            WITH breached AS (
                UPDATE crm.handoffs SET breached_at = $1, checked_at = $1
                 WHERE breached_at IS NULL AND sla_due_at < $1
                   AND (first_sales_touch_at IS NULL OR first_sales_touch_at > sla_due_at)
                RETURNING connector, contact_external_id, owner, score, handed_off_at, sla_due_at
            ), escalated AS (
                -- to the policy's escalation owner (a sales manager), else to the lead's owner
                SELECT b.*, coalesce(p.escalate_to, b.owner) AS escalate_owner
                  FROM breached b LEFT JOIN crm.nurture_policies p ON p.connector = b.connector
            ), task AS (
                \(NurtureSQL.insertCommand(
                    type: "create_task", destination: "x.connector",
                    idKey: "'create_task|sla|' || x.connector || '|' || x.contact_external_id || '|' || extract(epoch FROM x.handed_off_at)",
                    from: "escalated x", now: "$1", sequence: "NULL", step: "NULL", reason: "'sla_breach'",
                    extra: NurtureSQL.taskFields(
                        owner: "x.escalate_owner", deal: "NULL",
                        subject: "'SLA missed: lead (score ' || x.score || ') handed off ' || to_char(x.handed_off_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') || ' UTC' || coalesce(' to owner ' || x.owner, '') || ' has had no call or meeting'",
                        due: "$1")))
            )
            SELECT count(*) FROM breached
            """.with(now: now), connection)
        try await connection.query(
            """
            UPDATE crm.handoffs SET checked_at = $1
             WHERE breached_at IS NOT NULL AND first_sales_touch_at IS NULL AND checked_at < $1
            """.with(now: now), logger: logger)
        return breaches
    }
}

extension String {
    /// SQL text whose `$1` is the tick's instant.
    func with(now: Date) -> PostgresQuery {
        var bindings = PostgresBindings()
        bindings.append(now)
        return PostgresQuery(unsafeSQL: self, binds: bindings)
    }
}
