import CRMSyncCore
import CRMSyncStorage
import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import PostgresNIO

/// The webhook receiver's HTTP surface. A 2xx means the events are committed in PostgreSQL.
public struct WebhookRouter: Sendable {
    public struct Settings: Sendable {
        public var eventsSecret: String?
        public var maxBodyBytes: Int
        /// CRM connectors that may post to `/webhooks/{kind}/{connector}`.
        public var connectors: [WebhookConnector]
        public init(eventsSecret: String?, maxBodyBytes: Int = 1 << 20, connectors: [WebhookConnector] = []) {
            self.eventsSecret = eventsSecret
            self.maxBodyBytes = maxBodyBytes
            self.connectors = connectors
        }
    }

    let settings: Settings
    let client: PostgresClient
    let logger: Logger
    let now: @Sendable () -> Date
    let ready: @Sendable () async -> Bool
    let inbox: any InboxWriter

    /// `inbox` defaults to one transaction per request; `serve` passes an `InboxBatcher`.
    public init(settings: Settings, client: PostgresClient, logger: Logger, now: @escaping @Sendable () -> Date = { Date() },
                ready: @escaping @Sendable () async -> Bool = { true }, inbox: (any InboxWriter)? = nil) {
        self.settings = settings
        self.client = client
        self.inbox = inbox ?? DirectInboxWriter(client: client, logger: logger)
        self.logger = logger
        self.now = now
        self.ready = ready
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: MetricsMiddleware())
        router.get("/healthz") { _, _ in "ok" }
        router.get("/metrics") { _, _ -> Response in
            await recordInboxGauges()
            await OperationalGauges(client: client, logger: logger).record()
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: MetricsRegistry.exposition())))
        }
        router.get("/readyz") { _, _ -> Response in
            let ok = await ready()
            return Response(status: ok ? .ok : .serviceUnavailable, body: .init(byteBuffer: ByteBuffer(string: ok ? "ready" : "not ready")))
        }
        router.post("/webhooks/events") { request, _ -> Response in
            try await events(request)
        }
        router.post("/webhooks/hubspot/:connector") { request, context -> Response in
            try await hubspot(request, connector: context.parameters.get("connector") ?? "")
        }
        router.post("/webhooks/pipedrive/:connector") { request, context -> Response in
            try await pipedrive(request, connector: context.parameters.get("connector") ?? "")
        }
        router.post("/webhooks/salesforce/:connector") { request, context -> Response in
            try await salesforce(request, connector: context.parameters.get("connector") ?? "")
        }
        return router
    }

    /// Gauges read from the database at scrape time: what is waiting, and for how long.
    func recordInboxGauges() async {
        do {
            let rows = try await client.query(
                """
                SELECT count(*)::int8, coalesce(extract(epoch FROM now() - min(received_at)), 0)::float8,
                       (SELECT count(*) FROM crm.dead_letters WHERE replayed_at IS NULL)::int8
                  FROM crm.inbox WHERE processed_at IS NULL
                """, logger: logger
            ).collect()
            if let (pending, lag, dead) = try rows.first?.decode((Int64, Double, Int64).self) {
                Gauge(label: "crm_sync_inbox_pending").record(pending)
                Gauge(label: "crm_sync_inbox_lag_seconds").record(lag)
                Gauge(label: "crm_sync_dead_letters").record(dead)
            }
        } catch {
            Counter(label: "crm_sync_metrics_errors_total").increment()
        }
    }

    static func reply(_ status: HTTPResponse.Status, _ message: String) -> Response {
        let body = (try? JSONSerialization.data(withJSONObject: ["error": message])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    func reject(_ endpoint: String, _ reason: String, _ status: HTTPResponse.Status, _ message: String) -> Response {
        Counter(label: "crm_sync_webhook_rejects_total", dimensions: [("endpoint", endpoint), ("reason", reason)]).increment()
        logger.notice("webhook rejected", metadata: ["endpoint": "\(endpoint)", "reason": "\(reason)"])
        var response = Self.reply(status, message)
        // After an oversized body the connection is not reused: part of it may still be unread.
        if status == .contentTooLarge { response.headers[.connection] = "close" }
        return response
    }

    /// Standard Webhooks-signed engagement events: one event or an array.
    func events(_ request: Request) async throws -> Response {
        guard let secret = settings.eventsSecret, let signer = try? StandardWebhookSigner(secret: secret) else {
            return reject("events", "not_configured", .notFound, "engagement events are not configured")
        }
        guard let bytes = await collect(request) else {
            return reject("events", "too_large", .contentTooLarge, "body over \(settings.maxBodyBytes) bytes")
        }
        do {
            try signer.verify(
                id: request.headers[.init("webhook-id")!], timestamp: request.headers[.init("webhook-timestamp")!],
                signatures: request.headers[.init("webhook-signature")!], body: bytes, now: now())
        } catch {
            return reject("events", "signature", .unauthorized, error.description)
        }
        let parsed: [InboxEvent]
        switch Result(catching: { () throws(EngagementEventParser.ParseError) in try EngagementEventParser.parse(bytes) }) {
        case .success(let events): parsed = events
        case .failure(let error): return reject("events", "malformed", .badRequest, error.description)
        }
        if let failure = await commit(endpoint: "events", source: "events", parsed) { return failure }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{\"accepted\":\(parsed.count)}")))
    }

    /// Commits accepted events; nil when committed, else the response to send (the sender retries).
    func commit(endpoint: String, source: String, _ events: [InboxEvent]) async -> Response? {
        do {
            try await inbox.store(source: source, events: events)
        } catch {
            logger.error("inbox write failed", metadata: ["endpoint": "\(endpoint)", "error": "\(DatabaseError.describe(error))"])
            Counter(label: "crm_sync_webhook_rejects_total", dimensions: [("endpoint", endpoint), ("reason", "inbox_unavailable")]).increment()
            return Self.reply(.serviceUnavailable, "could not store the events; retry")
        }
        Counter(label: "crm_sync_webhook_events_total", dimensions: [("endpoint", endpoint)]).increment(by: events.count)
        for event in events {
            logger.debug("webhook event stored", metadata: ["endpoint": "\(endpoint)", "id": "\(event.delivery_id)", "type": "\(event.event_type)"])
        }
        return nil
    }

    /// The request body up to the limit, or nil when it is larger.
    /// How much of an oversized body is read (and thrown away) before the 413 goes out.
    public static let drainLimit = 16 << 20

    /// The body, or nil when it is over `maxBodyBytes`. The rest of an oversized body is read and
    /// discarded up to `drainLimit`, so that a client that sends its whole body before reading the
    /// answer (Python's urllib, many webhook senders) gets the 413 rather than a reset connection;
    /// beyond that bound the connection is closed on it.
    func collect(_ request: Request) async -> Data? {
        var kept = ByteBuffer(), seen = 0
        do {
            for try await chunk in request.body {
                seen += chunk.readableBytes
                if seen <= settings.maxBodyBytes {
                    kept.writeImmutableBuffer(chunk)
                } else if seen > Self.drainLimit {
                    return nil
                }
            }
        } catch {
            return nil
        }
        return seen <= settings.maxBodyBytes ? Data(buffer: kept) : nil
    }

    /// The configured connector of this kind and name.
    func connector(_ name: String, kind: CRMKind) -> WebhookConnector? {
        settings.connectors.first { $0.name == name && $0.kind == kind }
    }
}

/// Validates engagement event bodies (contract shape) without trusting anything in them.
public enum EngagementEventParser {
    public static let types: Set<String> = [
        "email.sent", "email.delivered", "email.opened", "email.clicked", "email.unsubscribed", "email.bounced",
        "form.submitted", "page.viewed", "webinar.attended", "meeting.booked",
    ]

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Each event keeps its own `id`; a delivery of an array is deduplicated per event id.
    public static func parse(_ body: Data) throws(ParseError) -> [InboxEvent] {
        let json: Any
        do { json = try StrictJSON.parse(body) } catch { throw ParseError(description: "body is not JSON: \(error)") }
        let items: [Any] = (json as? [Any]) ?? [json]
        guard !items.isEmpty else { throw ParseError(description: "no events in the body") }
        guard items.count <= 1000 else { throw ParseError(description: "more than 1000 events in one request") }
        var result: [InboxEvent] = []
        for (index, item) in items.enumerated() {
            let place = items.count > 1 ? "event \(index): " : ""
            guard let event = item as? [String: Any] else { throw ParseError(description: "\(place)expected an object") }
            guard let type = event["type"] as? String, types.contains(type) else {
                throw ParseError(description: "\(place)unknown or missing type")
            }
            guard let id = event["id"] as? String, !id.isEmpty else { throw ParseError(description: "\(place)missing id") }
            guard id.utf8.count <= InputLimits.identifierBytes else {
                throw ParseError(description: "\(place)id is longer than \(InputLimits.identifierBytes) bytes")
            }
            guard let occurred = (event["occurred_at"] as? String).flatMap(CRMTimestamp.parse), plausible(occurred) else {
                throw ParseError(description: "\(place)occurred_at is not an ISO 8601 time between 1970 and 2200")
            }
            guard let contact = event["contact"] as? [String: Any],
                  (contact["email"] as? String) != nil || (contact["external_id"] as? String) != nil else {
                throw ParseError(description: "\(place)contact needs an email or an external_id")
            }
            try checkSize(contact["email"], "contact.email", InputLimits.emailBytes, place)
            try checkSize(contact["external_id"], "contact.external_id", InputLimits.identifierBytes, place)
            for field in ["campaign", "sequence", "workspace", "connector"] {
                try checkSize(event[field], field, InputLimits.identifierBytes, place)
            }
            // `magnitude`, not `abs`: abs(Int.min) traps.
            if let step = event["step"], !(step is NSNull), (step as? Int).map({ $0.magnitude < 1_000_000_000 }) != true {
                throw ParseError(description: "\(place)step must be a whole number")
            }
            if let workspace = event["workspace"], !(workspace is NSNull), (workspace as? String).map(Workspace.isValidName) != true {
                throw ParseError(description: "\(place)workspace is not a workspace name (\(Workspace.rule))")
            }
            // PostgreSQL text and jsonb cannot hold NUL: refuse it here rather than fail the commit.
            guard let payload = try? JSONSerialization.data(withJSONObject: event), !containsNUL(payload) else {
                throw ParseError(description: "\(place)cannot re-encode the event (NUL characters are not accepted)")
            }
            let key = (contact["external_id"] as? String) ?? (contact["email"] as? String)?.lowercased()
            result.append(InboxEvent(deliveryID: id, eventType: type, occurredAt: occurred, recordKey: key,
                                     payload: String(decoding: payload, as: UTF8.self)))
        }
        return result
    }

    /// A string field over `limit` UTF-8 bytes is refused by name: it could never be stored.
    static func checkSize(_ value: Any?, _ field: String, _ limit: Int, _ place: String) throws(ParseError) {
        guard let text = value as? String, text.utf8.count > limit else { return }
        throw ParseError(description: "\(place)\(field) is longer than \(limit) bytes")
    }

    /// Times PostgreSQL and every CRM can hold; anything else is a malformed event.
    public static func plausible(_ date: Date) -> Bool {
        date.timeIntervalSince1970 >= 0 && date.timeIntervalSince1970 < 7_258_118_400
    }

    /// True when the JSON text has a NUL, raw or escaped.
    public static func containsNUL(_ json: Data) -> Bool {
        json.contains(0) || json.range(of: Data("\\u0000".utf8)) != nil
    }
}
