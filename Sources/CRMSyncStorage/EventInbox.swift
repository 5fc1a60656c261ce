import CRMSyncCore
import Foundation
import Logging
import PostgresNIO

/// One accepted webhook event, ready for the inbox.
public struct InboxEvent: Sendable, Encodable {
    public var delivery_id: String
    public var event_type: String
    public var occurred_at: Date
    public var record_key: String?
    /// The event's own JSON, as received.
    public var payload: String

    public init(deliveryID: String, eventType: String, occurredAt: Date, recordKey: String?, payload: String) {
        delivery_id = deliveryID
        event_type = eventType
        occurred_at = occurredAt
        record_key = recordKey
        self.payload = payload
    }
}

/// The durable inbox: events are committed here before a webhook is acknowledged, and applied to
/// the domain tables afterwards, idempotently and in occurrence order.
public struct EventInbox: Sendable {
    public init() {}

    /// Stores events; a delivery id already stored is ignored. Returns how many were new.
    @discardableResult
    public func store(source: String, events: [InboxEvent], client: PostgresClient, logger: Logger) async throws -> Int {
        guard !events.isEmpty else { return 0 }
        let json = String(decoding: try RecordWriter.encoder.encode(events), as: UTF8.self)
        let rows = try await client.query(
            """
            INSERT INTO crm.inbox (source, delivery_id, event_type, occurred_at, record_key, payload)
            SELECT \(source), r.delivery_id, r.event_type, r.occurred_at, r.record_key, r.payload::jsonb
              FROM json_to_recordset(\(json)::json)
                AS r(delivery_id text, event_type text, occurred_at timestamptz, record_key text, payload text)
            ON CONFLICT (source, delivery_id) DO NOTHING
            RETURNING 1
            """, logger: logger
        ).collect()
        return rows.count
    }

    /// Applies pending engagement events as touches, set-based. The contact is found by the
    /// event's `external_id` (`<connector or CRM kind>:<id>`) or, failing that, by e-mail later.
    @discardableResult
    public func applyEngagementEvents(client: PostgresClient, logger: Logger) async throws -> Int {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                WITH pending AS (
                    SELECT id, delivery_id, event_type, occurred_at, payload
                      FROM crm.inbox
                     WHERE source = 'events' AND processed_at IS NULL
                     ORDER BY occurred_at, id
                     FOR UPDATE SKIP LOCKED
                ), parsed AS (
                    SELECT p.*, split_part(p.payload #>> '{contact,external_id}', ':', 1) AS prefix,
                           nullif(substr(p.payload #>> '{contact,external_id}',
                                         length(split_part(p.payload #>> '{contact,external_id}', ':', 1)) + 2), '') AS contact_id
                      FROM pending p
                ), resolved AS (
                    SELECT pa.*,
                           coalesce((SELECT c.name FROM crm.connectors c WHERE c.name = pa.prefix),
                                    (SELECT min(c.name) FROM crm.connectors c WHERE c.kind = pa.prefix
                                      HAVING count(*) = 1)) AS connector
                      FROM parsed pa
                ), inserted AS (
                    INSERT INTO crm.touches (touch_key, connector, contact_external_id, email, campaign, kind, occurred_at,
                                             sequence, step, url, source)
                    SELECT 'events:' || r.delivery_id, r.connector, CASE WHEN r.connector IS NULL THEN NULL ELSE r.contact_id END,
                           lower(r.payload #>> '{contact,email}'), r.payload ->> 'campaign', r.event_type, r.occurred_at,
                           r.payload ->> 'sequence', (r.payload ->> 'step')::integer, r.payload ->> 'url', 'events'
                      FROM resolved r
                    ON CONFLICT (touch_key) DO NOTHING
                )
                UPDATE crm.inbox i SET processed_at = now(), attempts = attempts + 1
                  FROM pending p WHERE i.id = p.id
                RETURNING 1
                """, logger: logger
            ).collect()
            return rows.count
        }
    }
}
