import AsyncHTTPClient
import CRMSyncConfig
import CRMSyncConnectors
import CRMSyncCore
import CRMSyncStorage
import Foundation
import Logging
import Metrics
import NIOCore
import PostgresNIO

/// How the outbox retries.
public struct OutboxPolicy: Sendable {
    /// Attempts before a command is dead-lettered.
    public var maxAttempts: Int
    /// Backoff after the first failure; doubles per failure, capped at `maxDelay`, with jitter.
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// How long a claim lasts; a crashed worker's claims are free again after it. At least three
    /// request timeouts; a request is started only while it can finish inside the claim.
    public var claimLease: Duration
    public var batchSize: Int
    /// Requests in flight at once (each for a different contact).
    public var concurrency: Int
    /// Per-request timeout for the MA endpoint and the CRMs' write APIs.
    public var requestTimeout: Duration

    public init(maxAttempts: Int = 8, baseDelay: Duration = .seconds(10), maxDelay: Duration = .seconds(3600),
                claimLease: Duration = .seconds(120), batchSize: Int = 32, concurrency: Int = 8, requestTimeout: Duration = .seconds(10)) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
        self.claimLease = max(claimLease, requestTimeout * 3)
        self.batchSize = max(1, batchSize)
        self.concurrency = max(1, concurrency)
        self.requestTimeout = requestTimeout
    }

    /// Exponential backoff with jitter after `failures` failed attempts: a delay drawn from
    /// [d/2, d] where d = base · 2^(failures-1), capped at `maxDelay`.
    public func backoff(afterFailures failures: Int, random: Double = Double.random(in: 0...1)) -> TimeInterval {
        let base = baseDelay.seconds, cap = maxDelay.seconds
        let exponential = min(cap, base * pow(2, Double(min(max(failures, 1), 40) - 1)))
        return exponential / 2 + exponential / 2 * min(max(random, 0), 1)
    }
}

/// What one delivery attempt came to.
public enum OutboxDeliveryResult: Sendable, Equatable {
    /// Acknowledged (any 2xx); the CRM's id for what was created, if any.
    case delivered(crmRecordID: String?)
    /// Not acknowledged; retried with backoff, or later when the receiver asked (`Retry-After`).
    case failed(String, retryAfter: TimeInterval? = nil)
    /// The command itself is unusable (e.g. a `create_task` without a subject): dead at once.
    case rejected(String)
}

/// Delivers one command to where its `destination` says.
public protocol OutboxTarget: Sendable {
    func deliver(_ command: OutboxCommand, now: Date) async -> OutboxDeliveryResult
}

/// What a pass did.
public struct OutboxPassSummary: Sendable, Equatable, CustomStringConvertible {
    public var delivered = 0
    public var retried = 0
    public var dead = 0
    public init(delivered: Int = 0, retried: Int = 0, dead: Int = 0) {
        self.delivered = delivered
        self.retried = retried
        self.dead = dead
    }
    public var description: String { "delivered \(delivered), retried \(retried), dead \(dead)" }
    public static func + (a: Self, b: Self) -> Self {
        Self(delivered: a.delivered + b.delivered, retried: a.retried + b.retried, dead: a.dead + b.dead)
    }
}

/// The transactional outbox's dispatcher: claims due commands in batches (`FOR UPDATE SKIP
/// LOCKED` plus a claim lease, so replicas never deliver one row at the same time), delivers each
/// to the MA endpoint or a CRM's write API, and records the outcome in its own transaction:
/// delivered; or one more attempt and a backoff; or, after `maxAttempts`, dead. Time comes only
/// from `clock`.
public struct OutboxDispatcher: Sendable {
    public let store: OutboxStore
    public let target: any OutboxTarget
    public let policy: OutboxPolicy
    public let clock: @Sendable () -> Date
    let logger: Logger

    public init(store: OutboxStore, target: any OutboxTarget, policy: OutboxPolicy = OutboxPolicy(),
                clock: @escaping @Sendable () -> Date = { Date() }, logger: Logger) {
        self.store = store
        self.target = target
        self.policy = policy
        self.clock = clock
        self.logger = logger
    }

    /// Delivers until nothing is due: a contact's next command becomes due in the same pass once
    /// the one before it is delivered.
    @discardableResult
    public func pass() async throws -> OutboxPassSummary {
        var total = OutboxPassSummary()
        while true {
            let claimedAt = clock()
            let batch = try await store.claim(limit: policy.batchSize, now: claimedAt, lease: policy.claimLease)
            if batch.isEmpty { return total }
            // A request is only started while it can end inside the claim; the rest of a slow batch
            // waits for its claim to lapse and is taken again, so no two workers send a row at once.
            let startBy = claimedAt.addingTimeInterval(policy.claimLease.seconds - policy.requestTimeout.seconds)
            let step = try await deliver(batch, startBy: startBy)
            total = total + step
        }
    }

    /// Delivers a claimed batch, `concurrency` at a time; each outcome is committed on its own.
    func deliver(_ batch: [OutboxCommand], startBy: Date) async throws -> OutboxPassSummary {
        try await withThrowingTaskGroup(of: OutboxPassSummary.self) { group in
            var pending = batch[...]
            var summary = OutboxPassSummary()
            func launch() {
                guard let command = pending.popFirst() else { return }
                group.addTask { clock() < startBy ? try await deliverOne(command) : OutboxPassSummary() }
            }
            for _ in 0..<policy.concurrency { launch() }
            while let step = try await group.next() {
                summary = summary + step
                launch()
            }
            return summary
        }
    }

    private func deliverOne(_ command: OutboxCommand) async throws -> OutboxPassSummary {
        let result = await target.deliver(command, now: clock())
        let now = clock()
        let labels = [("destination", command.destination == "ma" ? "ma" : "crm")]
        switch result {
        case .delivered(let crmRecordID):
            try await store.markDelivered(command.id, crmRecordID: crmRecordID, now: now)
            Counter(label: "crm_sync_outbox_delivered_total", dimensions: labels).increment()
            return OutboxPassSummary(delivered: 1)
        case .failed(let reason, let retryAfter):
            return try await recordFailure(command, reason: reason, permanent: false, retryAfter: retryAfter, now: now, labels: labels)
        case .rejected(let reason):
            return try await recordFailure(command, reason: reason, permanent: true, now: now, labels: labels)
        }
    }

    private func recordFailure(
        _ command: OutboxCommand, reason: String, permanent: Bool, retryAfter: TimeInterval? = nil, now: Date, labels: [(String, String)]
    ) async throws -> OutboxPassSummary {
        let retryAt = now.addingTimeInterval(max(policy.backoff(afterFailures: command.attempts + 1), retryAfter ?? 0))
        let dead = try await store.markFailed(command.id, error: reason, now: now, retryAt: retryAt,
                                              maxAttempts: policy.maxAttempts, permanent: permanent)
        if dead {
            Counter(label: "crm_sync_outbox_dead_lettered_total", dimensions: labels).increment()
            logger.warning("outbox command dead-lettered", metadata: [
                "id": "\(command.id)", "destination": "\(command.destination)", "type": "\(command.commandType)",
                "attempts": "\(command.attempts + 1)", "error": "\(reason)",
            ])
            return OutboxPassSummary(dead: 1)
        }
        Counter(label: "crm_sync_outbox_retries_total", dimensions: labels).increment()
        logger.info("outbox delivery failed; will retry", metadata: [
            "id": "\(command.id)", "destination": "\(command.destination)", "attempt": "\(command.attempts + 1)",
            "retry_at": "\(CRMTimestamp.iso(retryAt))", "error": "\(reason)",
        ])
        return OutboxPassSummary(retried: 1)
    }
}

// MARK: Targets

/// The MA tool's endpoint (`outbound.url`): one command per POST, signed per Standard Webhooks;
/// `webhook-id` and `Idempotency-Key` are the command's id, the same on every retry.
public struct MAWebhookTarget: OutboxTarget {
    public let url: String
    let signer: StandardWebhookSigner
    let http: HTTPClient
    let timeout: Duration

    public init(url: String, secret: String, http: HTTPClient, timeout: Duration) throws {
        self.url = url
        signer = try StandardWebhookSigner(secret: secret)
        self.http = http
        self.timeout = timeout
    }

    public func deliver(_ command: OutboxCommand, now: Date) async -> OutboxDeliveryResult {
        let timestamp = Int64(now.timeIntervalSince1970.rounded(.down))
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "crm-sync/1.0")
        request.headers.add(name: "webhook-id", value: command.id)
        request.headers.add(name: "webhook-timestamp", value: "\(timestamp)")
        request.headers.add(name: "webhook-signature", value: signer.signature(id: command.id, timestamp: timestamp, body: command.body))
        request.headers.add(name: "Idempotency-Key", value: command.id)
        request.body = .bytes(ByteBuffer(bytes: command.body))
        do {
            let response = try await http.execute(request, timeout: .milliseconds(Int64(timeout.seconds * 1000)))
            let status = Int(response.status.code)
            if (200..<300).contains(status) {
                // Acknowledged by the status line; the body (of any size) is read and dropped.
                for try await _ in response.body {}
                return .delivered(crmRecordID: nil)
            }
            let text = ((try? await response.body.collect(upTo: 64 << 10)).map { String(buffer: $0) } ?? "").prefix(200)
            // `Retry-After` in seconds (429, 503); an HTTP date is not honoured, the backoff applies.
            let retryAfter = response.headers.first(name: "Retry-After").flatMap(TimeInterval.init).map { min(max($0, 0), 86_400) }
            return .failed("HTTP \(status)" + (text.isEmpty ? "" : ": \(text)"), retryAfter: retryAfter)
        } catch {
            return .failed(String(String(describing: error).prefix(200)))
        }
    }
}

/// `create_task` for a CRM: the payload's `subject`, `body` (or `note`), `due`, `owner`,
/// `contact.external_id` and `deal` (ids with or without a `connector:` prefix).
public struct CRMTaskTarget: OutboxTarget {
    public let writer: any TaskWriter

    public init(writer: any TaskWriter) {
        self.writer = writer
    }

    public static func draft(from body: Data) -> Result<TaskDraft, TaskPayloadError> {
        guard let payload = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            return .failure(TaskPayloadError(reason: "the payload is not a JSON object"))
        }
        func text(_ value: Any?) -> String? {
            switch value {
            case let string as String: string.isEmpty ? nil : string
            case let number as NSNumber: number.stringValue
            case let object as [String: Any]: text(object["external_id"] ?? object["id"])
            default: nil
            }
        }
        /// `hubspot:1501` → `1501`; a bare id stays as it is.
        func id(_ value: Any?) -> String? {
            guard let value = text(value) else { return nil }
            guard let colon = value.firstIndex(of: ":") else { return value }
            let rest = value[value.index(after: colon)...]
            return rest.isEmpty ? nil : String(rest)
        }
        guard let subject = text(payload["subject"]) else {
            return .failure(TaskPayloadError(reason: "create_task without a subject"))
        }
        var due: Date?
        if let dueText = text(payload["due"] ?? payload["due_at"]) {
            guard let parsed = CRMTimestamp.parse(dueText) ?? CRMTimestamp.parse(dueText + "T00:00:00Z") else {
                return .failure(TaskPayloadError(reason: "create_task: due '\(dueText.prefix(40))' is not an ISO 8601 date"))
            }
            due = parsed
        }
        return .success(TaskDraft(
            subject: subject, body: text(payload["body"] ?? payload["note"]), due: due,
            ownerID: id(payload["owner"] ?? payload["owner_id"]), contactID: id(payload["contact"]),
            dealID: id(payload["deal"] ?? payload["deal_id"])))
    }

    public func deliver(_ command: OutboxCommand, now: Date) async -> OutboxDeliveryResult {
        guard command.commandType == "create_task" else {
            return .rejected("a CRM destination takes create_task commands, not \(command.commandType)")
        }
        let draft: TaskDraft
        switch Self.draft(from: command.body) {
        case .success(let value): draft = value
        case .failure(let problem): return .rejected(problem.reason)
        }
        do {
            return .delivered(crmRecordID: try await writer.createTask(draft))
        } catch {
            return .failed(String(String(describing: error).prefix(300)))
        }
    }
}

public struct TaskPayloadError: Error, Sendable {
    public var reason: String
}

/// Sends each command where its `destination` says: `ma` to the MA endpoint, a connector's name
/// to that CRM. A destination with nothing configured fails (and ends dead, replayable once
/// configured).
public struct OutboxRouter: OutboxTarget {
    public let ma: (any OutboxTarget)?
    public let connectors: [String: any OutboxTarget]

    public init(ma: (any OutboxTarget)?, connectors: [String: any OutboxTarget]) {
        self.ma = ma
        self.connectors = connectors
    }

    public func deliver(_ command: OutboxCommand, now: Date) async -> OutboxDeliveryResult {
        if command.destination == "ma" {
            guard let ma else { return .failed("no outbound.url is configured for destination 'ma'") }
            return await ma.deliver(command, now: now)
        }
        guard let target = connectors[command.destination] else {
            return .failed("no connector named '\(command.destination)' is configured")
        }
        return await target.deliver(command, now: now)
    }

    /// The targets a config names: `outbound` for `ma`, and every connector's task writer. CRM
    /// writes go out once per attempt (the connector's own retries are off: a retried create after
    /// a lost response would make a second task); the outbox's backoff does the retrying.
    public static func make(config: AppConfig, http: HTTPClient, policy: OutboxPolicy, logger: Logger) throws -> OutboxRouter {
        let ma = try config.outbound.map { try MAWebhookTarget(url: $0.url, secret: $0.secret, http: http, timeout: policy.requestTimeout) }
        var connectors: [String: any OutboxTarget] = [:]
        for connector in config.connectors {
            var single = connector
            single.maxAttempts = 1
            if let writer = try ConnectorFactory.make(single, http: http, logger: logger, timeout: policy.requestTimeout) as? any TaskWriter {
                connectors[connector.name] = CRMTaskTarget(writer: writer)
            }
        }
        return OutboxRouter(ma: ma, connectors: connectors)
    }
}

extension OutboxDispatcher {
    /// A dispatcher for `config` on `client`, with the policy's attempts from `outbound.max_attempts`.
    public static func make(
        config: AppConfig, client: PostgresClient, http: HTTPClient = .shared, worker: String = WorkLeases.workerName(),
        clock: @escaping @Sendable () -> Date = { Date() }, logger: Logger
    ) throws -> OutboxDispatcher {
        var policy = OutboxPolicy()
        if let attempts = config.outbound?.maxAttempts { policy.maxAttempts = max(1, attempts) }
        let router = try OutboxRouter.make(config: config, http: http, policy: policy, logger: logger)
        return OutboxDispatcher(store: OutboxStore(client: client, logger: logger, worker: worker), target: router,
                                policy: policy, clock: clock, logger: logger)
    }
}
