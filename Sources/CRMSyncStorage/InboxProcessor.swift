import CRMSyncCore
import Foundation
import Logging
import PostgresNIO

/// Applies committed inbox events to the domain tables, idempotently: engagement events become
/// touches (keyed on the delivery id), CRM events become stage history and tombstones. An event
/// that cannot be applied is marked processed and filed in `crm.dead_letters` with its reason;
/// `replay` puts it back in the queue.
public struct InboxProcessor: Sendable {
    public struct Outcome: Sendable, Equatable {
        public var applied = 0
        public var deadLettered = 0
        public init(applied: Int = 0, deadLettered: Int = 0) {
            self.applied = applied
            self.deadLettered = deadLettered
        }
        public static func + (a: Outcome, b: Outcome) -> Outcome {
            Outcome(applied: a.applied + b.applied, deadLettered: a.deadLettered + b.deadLettered)
        }
    }

    let client: PostgresClient
    let logger: Logger
    let batchSize: Int

    public init(client: PostgresClient, logger: Logger, batchSize: Int = 5_000) {
        self.client = client
        self.logger = logger
        self.batchSize = batchSize
    }

    /// Works until nothing is pending (or only rows another worker holds). When it applied anything,
    /// it then recomputes the attribution figures of the deals the events changed (new touches, stage
    /// changes, tombstones), so the reporting views reflect them when `drain` returns.
    @discardableResult
    public func drain() async throws -> Outcome {
        var total = Outcome()
        while true {
            let step = try await engagementBatch() + crmBatch()
            total = total + step
            if step.applied + step.deadLettered == 0 { break }
        }
        if total.applied > 0 {
            try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
        }
        return total
    }

    /// One batch of engagement events, set-based. The contact is found by the event's
    /// `external_id` (`<connector or CRM kind>:<id>`) or, failing that, by e-mail later; an event
    /// with neither a known connector nor an e-mail can be attributed to nobody.
    func engagementBatch() async throws -> Outcome {
        let rows = try await client.query(
            """
            WITH pending AS (
                SELECT id, delivery_id, event_type, occurred_at, payload
                  FROM crm.inbox
                 WHERE source = 'events' AND processed_at IS NULL
                 ORDER BY occurred_at, id
                 LIMIT \(batchSize)
                 FOR UPDATE SKIP LOCKED
            ), parsed AS (
                SELECT p.*, split_part(p.payload #>> '{contact,external_id}', ':', 1) AS prefix,
                       nullif(substr(p.payload #>> '{contact,external_id}',
                                     length(split_part(p.payload #>> '{contact,external_id}', ':', 1)) + 2), '') AS contact_id,
                       lower(p.payload #>> '{contact,email}') AS email,
                       p.payload ->> 'step' AS step_text,
                       nullif(p.payload ->> 'workspace', '') AS asked_workspace
                  FROM pending p
            ), resolved AS (
                SELECT pa.*,
                       -- a CRM kind as the prefix names the one connector of that kind (in the
                       -- event's workspace when it names one)
                       coalesce((SELECT c.name FROM crm.connectors c WHERE c.name = pa.prefix),
                                (SELECT min(c.name) FROM crm.connectors c
                                  WHERE c.kind = pa.prefix AND (pa.asked_workspace IS NULL OR c.workspace = pa.asked_workspace)
                                  HAVING count(*) = 1)) AS connector,
                       EXISTS (SELECT 1 FROM crm.workspaces w WHERE w.name = pa.asked_workspace) AS workspace_known,
                       CASE
                           WHEN pa.step_text IS NOT NULL AND pa.step_text !~ '^-?[0-9]{1,9}$' THEN 'step is not a whole number'
                       END AS step_problem
                  FROM parsed pa
            ), placed AS (
                SELECT r.*, (SELECT c.workspace FROM crm.connectors c WHERE c.name = r.connector) AS connector_workspace
                  FROM resolved r
            ), judged AS (
                SELECT r.*,
                       coalesce(r.step_problem,
                                CASE WHEN r.asked_workspace IS NOT NULL AND NOT r.workspace_known
                                     THEN format('workspace %s is not configured', r.asked_workspace) END,
                                CASE WHEN r.asked_workspace <> r.connector_workspace
                                     THEN format('contact external_id names connector %s of workspace %s, but the event is for workspace %s',
                                                 r.connector, r.connector_workspace, r.asked_workspace) END,
                                CASE WHEN r.connector IS NULL AND r.email IS NULL
                                     THEN 'contact external_id names no synced connector and the event has no e-mail' END) AS problem,
                       -- where the event turned out to belong (NULL: nowhere known)
                       coalesce(r.connector_workspace, CASE WHEN r.workspace_known THEN r.asked_workspace END,
                                CASE WHEN r.asked_workspace IS NULL AND r.connector IS NULL AND r.email IS NOT NULL
                                     THEN 'default' END) AS workspace
                  FROM placed r
            ), dead AS (
                INSERT INTO crm.dead_letters (inbox_id, reason, workspace)
                SELECT j.id, j.problem, j.workspace FROM judged j WHERE j.problem IS NOT NULL
                ON CONFLICT (inbox_id) WHERE replayed_at IS NULL DO NOTHING
                RETURNING 1
            ), inserted AS (
                INSERT INTO crm.touches (touch_key, connector, contact_external_id, email, campaign, kind, occurred_at,
                                         sequence, step, url, source, bounce, workspace)
                SELECT 'events:' || j.delivery_id, j.connector, CASE WHEN j.connector IS NULL THEN NULL ELSE j.contact_id END,
                       j.email, j.payload ->> 'campaign', j.event_type, j.occurred_at,
                       j.payload ->> 'sequence', j.step_text::integer, j.payload ->> 'url', 'events',
                       CASE WHEN j.event_type = 'email.bounced' THEN
                           CASE WHEN lower(coalesce(j.payload ->> 'bounce_type', j.payload ->> 'severity', ''))
                                     IN ('soft', 'temporary', 'transient') THEN 'soft' ELSE 'hard' END
                       END,
                       j.workspace
                  FROM judged j
                 WHERE j.problem IS NULL
                 ORDER BY j.occurred_at, j.id
                ON CONFLICT (touch_key) DO NOTHING
                RETURNING 1
            ), marked AS (
                UPDATE crm.inbox i SET processed_at = now(), attempts = attempts + 1, workspace = j.workspace
                  FROM judged j WHERE i.id = j.id
                RETURNING j.problem IS NULL AS ok
            )
            SELECT count(*) FILTER (WHERE ok)::int8, count(*) FILTER (WHERE NOT ok)::int8 FROM marked
            """, logger: logger
        ).collect()
        guard let row = rows.first else { return Outcome() }
        let (applied, dead) = try row.decode((Int64, Int64).self)
        return Outcome(applied: Int(applied), deadLettered: Int(dead))
    }

    /// One batch of CRM webhook events, each record's events in occurrence order. Tombstones
    /// are guarded by the record's modification stamp, so a late event never undoes a newer poll.
    func crmBatch() async throws -> Outcome {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                SELECT id, source, occurred_at, payload #>> '{change}'
                  FROM crm.inbox
                 WHERE source <> 'events' AND processed_at IS NULL
                 ORDER BY source, record_key, occurred_at, id
                 LIMIT \(batchSize)
                 FOR UPDATE SKIP LOCKED
                """, logger: logger
            ).collect()
            var outcome = Outcome()
            for row in rows {
                let (id, connector, occurredAt, changeText) = try row.decode((Int64, String, Date, String?).self)
                let problem: String?
                if let changeText, let change = try? JSONDecoder().decode(CRMWebhookChange.self, from: Data(changeText.utf8)) {
                    problem = try await apply(change, connector: connector, occurredAt: occurredAt, on: connection)
                } else {
                    problem = "the inbox payload has no readable change"
                }
                if let problem {
                    try await connection.query(
                        """
                        INSERT INTO crm.dead_letters (inbox_id, reason, workspace)
                        VALUES (\(id), \(problem), (SELECT workspace FROM crm.connectors WHERE name = \(connector)))
                        ON CONFLICT (inbox_id) WHERE replayed_at IS NULL DO NOTHING
                        """, logger: logger)
                    outcome.deadLettered += 1
                } else {
                    outcome.applied += 1
                }
                try await connection.query(
                    """
                    UPDATE crm.inbox SET processed_at = now(), attempts = attempts + 1,
                           workspace = (SELECT workspace FROM crm.connectors WHERE name = \(connector))
                     WHERE id = \(id)
                    """, logger: logger)
            }
            return outcome
        }
    }

    /// Returns why the change cannot be applied, or nil once it is.
    private func apply(_ change: CRMWebhookChange, connector: String, occurredAt: Date, on connection: PostgresConnection) async throws -> String? {
        if change.action == .hint { return nil }
        guard let table = ["deal": "crm.deals", "contact": "crm.contacts", "company": "crm.accounts"][change.object] else {
            return "unsupported object type \(change.object) (\(change.sourceType))"
        }
        switch change.action {
        case .hint, .unsupported:
            return "unsupported event type \(change.sourceType)"
        case .stageChanged:
            guard change.object == "deal", let stage = change.stage, !stage.isEmpty else { return "stage change without a deal stage" }
            try await connection.query(
                """
                INSERT INTO crm.stage_history (connector, deal_external_id, stage, canonical_stage, entered_at, source)
                VALUES (\(connector), \(change.externalID), \(stage), \(change.canonicalStage), \(occurredAt), 'webhook')
                ON CONFLICT DO NOTHING
                """, logger: logger)
            try await connection.query(
                """
                UPDATE crm.deals SET stage = \(stage), canonical_stage = \(change.canonicalStage), modified_at = \(occurredAt)
                 WHERE connector = \(connector) AND external_id = \(change.externalID) AND modified_at < \(occurredAt)
                """, logger: logger)
            return nil
        case .deleted:
            try await connection.query(
                PostgresQuery(unsafeSQL: """
                    UPDATE \(table) SET deleted = true, modified_at = $3
                     WHERE connector = $1 AND external_id = $2 AND modified_at <= $3
                    """, binds: try Self.binds(connector, change.externalID, occurredAt)), logger: logger)
            return nil
        case .merged:
            guard let merged = change.mergedIDs, !merged.isEmpty else { return "merge without merged ids" }
            try await connection.query(
                PostgresQuery(unsafeSQL: """
                    UPDATE \(table) SET deleted = true, merged_into = $2, modified_at = greatest(modified_at, $4)
                     WHERE connector = $1 AND external_id = ANY($3) AND external_id <> $2
                    """, binds: try Self.binds(connector, change.externalID, merged, occurredAt)), logger: logger)
            return nil
        }
    }

    private static func binds(_ values: any PostgresEncodable...) throws -> PostgresBindings {
        var bindings = PostgresBindings()
        for value in values { try bindings.append(value) }
        return bindings
    }

    /// Re-queues dead letters (all open ones, or one by its id) and applies them again at once.
    /// Returns how many were re-queued and what applying them did.
    public func replay(deadLetterID: Int64? = nil) async throws -> (requeued: Int, outcome: Outcome) {
        let rows = try await client.withTransaction(logger: logger) { connection in
            try await connection.query(
                """
                WITH opened AS (
                    UPDATE crm.dead_letters SET replayed_at = now()
                     WHERE replayed_at IS NULL AND (\(deadLetterID)::int8 IS NULL OR id = \(deadLetterID))
                    RETURNING inbox_id
                )
                UPDATE crm.inbox i SET processed_at = NULL FROM opened o WHERE i.id = o.inbox_id
                RETURNING i.id
                """, logger: logger
            ).collect()
        }
        let outcome = rows.isEmpty ? Outcome() : try await drain()
        return (rows.count, outcome)
    }
}
