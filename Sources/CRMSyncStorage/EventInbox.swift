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

    /// Applies everything pending (see `InboxProcessor`); returns how many events took effect.
    @discardableResult
    public func applyEngagementEvents(client: PostgresClient, logger: Logger) async throws -> Int {
        try await InboxProcessor(client: client, logger: logger).drain().applied
    }
}
