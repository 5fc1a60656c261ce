/// SQL fragments the tick's phases share. They are fixed text written here (never user input);
/// values always travel as binds. The phases write through data-modifying CTEs, which PostgreSQL
/// runs to completion in the statement whether or not the final SELECT reads them.
enum NurtureSQL {
    static let isoUTC = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

    /// CTEs turning `input(id, sequence, from_ts, days)` into `name(id, due)`: `days` business days
    /// after `from_ts` in the sequence's calendar, moved into its send window (the rule of
    /// `BusinessCalendar.due(from:businessDays:)`, by lookups in `crm.nurture_calendar_days`).
    /// With `days` 0 the due time is `from_ts` itself when that instant is inside the window of a
    /// business day, else the next window opening (always later): the send phase's gate.
    static func due(_ name: String, input: String) -> String {
        """
        \(name)_local AS (
            SELECT i.id, s.calendar, s.time_zone, s.window_start, s.window_end, i.days,
                   (i.from_ts AT TIME ZONE s.time_zone) AS local
              FROM \(input) i JOIN crm.nurture_sequences s ON s.name = i.sequence
        ), \(name)_target AS (
            SELECT l.id, l.calendar, l.time_zone, l.window_start, l.window_end,
                   CASE WHEN l.days > 0 THEN c.ord + l.days WHEN c.business THEN c.ord ELSE c.ord + 1 END AS k,
                   CASE WHEN l.days = 0 AND NOT c.business THEN l.window_start ELSE l.local::time END AS t
              FROM \(name)_local l
              JOIN crm.nurture_calendar_days c ON c.calendar = l.calendar AND c.day = l.local::date
        ), \(name) AS (
            SELECT g.id,
                   (c.day + CASE WHEN g.t >= g.window_end OR g.t < g.window_start THEN g.window_start ELSE g.t END)
                       AT TIME ZONE g.time_zone AS due
              FROM \(name)_target g
              JOIN crm.nurture_calendar_days c ON c.calendar = g.calendar AND c.business
               AND c.ord = CASE WHEN g.t >= g.window_end THEN g.k + 1 ELSE g.k END
        )
        """
    }

    /// An `INSERT INTO crm.outbox` of one command per row of `from` (aliased `x`, with `connector`
    /// and `contact_external_id`), its id `cmd_` + md5 of `idKey`: the same decision always gets the
    /// same id, so a repeated tick inserts nothing.
    static func insertCommand(
        type: String, destination: String, idKey: String, from: String, now: String,
        sequence: String, step: String, reason: String, extra: String = "NULL"
    ) -> String {
        """
        INSERT INTO crm.outbox (id, destination, command_type, payload, created_at, next_attempt_at, workspace)
        SELECT k.id, \(destination), '\(type)',
               crm.nurture_command('\(type)', k.id, \(now),
                                   -- a lookup by key per command: cheaper than hashing every contact
                                   (SELECT c.email FROM crm.contacts c
                                     WHERE c.connector = x.connector AND c.external_id = x.contact_external_id),
                                   x.connector, x.contact_external_id, \(sequence), \(step), \(reason), \(extra)),
               \(now), \(now),
               coalesce((SELECT cn.workspace FROM crm.connectors cn WHERE cn.name = x.connector), 'default')
          FROM \(from)
         CROSS JOIN LATERAL (SELECT 'cmd_' || md5(\(idKey)) AS id) k
        ON CONFLICT (id) DO NOTHING
        RETURNING 1
        """
    }

    /// The CRM task fields of a `create_task` command, named as the outbox's `CRMTaskTarget` reads
    /// them (the contact travels in the common `contact.external_id`).
    static func taskFields(owner: String, deal: String, subject: String, due: String) -> String {
        """
        jsonb_build_object('owner', \(owner), 'deal', \(deal), 'subject', \(subject),
                           'due', to_char((\(due)) AT TIME ZONE 'UTC', \(isoUTC)))
        """
    }
}
