import Logging
import PostgresNIO

/// Where a webhook handler puts accepted events. Returning means the events are committed in
/// PostgreSQL (already-stored delivery ids count as committed), so the handler may answer 2xx.
public protocol InboxWriter: Sendable {
    func store(source: String, events: [InboxEvent]) async throws
}

/// Why the inbox refused events.
public enum InboxError: Error, CustomStringConvertible {
    case shuttingDown

    public var description: String {
        switch self {
        case .shuttingDown: "the receiver is shutting down; retry"
        }
    }
}

/// One transaction per request: simple, and right for tests and low traffic. `serve` uses
/// `InboxBatcher`, which shares one commit among concurrent requests.
public struct DirectInboxWriter: InboxWriter {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func store(source: String, events: [InboxEvent]) async throws {
        try await EventInbox.commit(events.map { InboxEvent.Sourced(source: source, event: $0) }, client: client, logger: logger)
    }
}

extension InboxEvent {
    /// An event together with the endpoint it came from; (source, delivery id) is its identity.
    public struct Sourced: Sendable, Encodable {
        public var source: String
        public var event: InboxEvent

        public init(source: String, event: InboxEvent) {
            self.source = source
            self.event = event
        }

        enum CodingKeys: String, CodingKey { case source, delivery_id, event_type, occurred_at, record_key, payload }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(source, forKey: .source)
            try container.encode(event.delivery_id, forKey: .delivery_id)
            try container.encode(event.event_type, forKey: .event_type)
            try container.encode(event.occurred_at, forKey: .occurred_at)
            try container.encode(event.record_key, forKey: .record_key)
            try container.encode(event.payload, forKey: .payload)
        }
    }
}

extension EventInbox {
    /// Commits events from any number of requests in one statement (one transaction, one WAL
    /// flush). Rows are inserted in (source, delivery id) order so two concurrent commits that
    /// share ids take their index locks in the same order and cannot deadlock.
    public static func commit(_ rows: [InboxEvent.Sourced], client: PostgresClient, logger: Logger) async throws {
        guard !rows.isEmpty else { return }
        var seen = Set<String>()
        let unique = rows
            .filter { seen.insert($0.source + "\u{1F}" + $0.event.delivery_id).inserted }
            .sorted { ($0.source, $0.event.delivery_id) < ($1.source, $1.event.delivery_id) }
        let json = String(decoding: try RecordWriter.encoder.encode(unique), as: UTF8.self)
        try await client.query(
            """
            INSERT INTO crm.inbox (source, delivery_id, event_type, occurred_at, record_key, payload)
            SELECT r.source, r.delivery_id, r.event_type, r.occurred_at, r.record_key, r.payload::jsonb
              FROM json_to_recordset(\(json)::json)
                AS r(source text, delivery_id text, event_type text, occurred_at timestamptz, record_key text, payload text)
             ORDER BY r.source COLLATE "C", r.delivery_id COLLATE "C"
            ON CONFLICT (source, delivery_id) DO NOTHING
            """, logger: logger)
    }
}
