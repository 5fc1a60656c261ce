import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1

/// The HTTP side every connector shares: rate limiting, retries with backoff for 429 / 5xx /
/// timeouts / resets / truncated bodies, `Retry-After`, and counters. The token is attached here
/// and never logged.
public struct CRMHTTPClient: Sendable {
    public struct Request: Sendable {
        public var method: HTTPMethod
        public var url: String
        public var headers: [(String, String)]
        public var body: Data?
        /// HubSpot's search endpoints have their own, lower limit.
        public var usesSearchLimit: Bool

        public init(method: HTTPMethod = .GET, url: String, headers: [(String, String)] = [], body: Data? = nil, usesSearchLimit: Bool = false) {
            self.method = method
            self.url = url
            self.headers = headers
            self.body = body
            self.usesSearchLimit = usesSearchLimit
        }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: HTTPHeaders
        public var body: Data
    }

    /// Counts what happened, for progress lines and metrics.
    public final class Stats: @unchecked Sendable {
        private let lock = NSLock()
        private var _requests = 0
        private var _retries = 0
        private var _rateLimited = 0
        public init() {}
        func record(request: Bool = false, retry: Bool = false, rateLimited: Bool = false) {
            lock.lock()
            defer { lock.unlock() }
            if request { _requests += 1 }
            if retry { _retries += 1 }
            if rateLimited { _rateLimited += 1 }
        }
        public var requests: Int { lock.withLock { _requests } }
        public var retries: Int { lock.withLock { _retries } }
        public var rateLimited: Int { lock.withLock { _rateLimited } }
    }

    public let connector: String
    let http: HTTPClient
    let limiter: RateLimiter
    let searchLimiter: RateLimiter
    let retry: RetryPolicy
    let authorization: [(String, String)]
    let timeout: Duration
    public let stats: Stats
    let logger: Logger

    public init(
        connector: String, http: HTTPClient, requestsPerSecond: Double, searchRequestsPerSecond: Double,
        retry: RetryPolicy, authorization: [(String, String)], timeout: Duration = .seconds(30), logger: Logger
    ) {
        self.connector = connector
        self.http = http
        limiter = RateLimiter(ratePerSecond: requestsPerSecond)
        searchLimiter = RateLimiter(ratePerSecond: searchRequestsPerSecond, burst: 1)
        self.retry = retry
        self.authorization = authorization
        self.timeout = timeout
        stats = Stats()
        self.logger = logger
    }

    /// Sends with retries and decodes the JSON body; a body that does not decode (truncated) is retried.
    /// `classify` turns a non-2xx response into the CRM's own error.
    public func json<T: Decodable>(
        _ request: Request, as type: T.Type, classify: @Sendable (Response) -> ConnectorError
    ) async throws -> T {
        try await send(request, classify: classify) { response in
            do {
                return try JSONDecoder().decode(T.self, from: response.body)
            } catch {
                throw ConnectorError.malformedResponse(connector: connector, what: "\(T.self) did not decode (\(Self.short(error)))")
            }
        }
    }

    public func send<T>(
        _ request: Request, classify: @Sendable (Response) -> ConnectorError, decode: (Response) throws -> T
    ) async throws -> T {
        var attempt = 0
        var lastError = ""
        while true {
            attempt += 1
            if request.usesSearchLimit { try await searchLimiter.acquire() }
            try await limiter.acquire()
            var retryAfter: Duration?
            do {
                let response = try await execute(request)
                stats.record(request: true)
                Counter(label: "crm_sync_http_requests_total", dimensions: [("connector", connector), ("status", "\(response.status)")]).increment()
                if (200..<300).contains(response.status) {
                    return try decode(response)
                }
                let error = classify(response)
                if response.status == 429 {
                    stats.record(rateLimited: true)
                    Counter(label: "crm_sync_http_429_total", dimensions: [("connector", connector)]).increment()
                    // HubSpot does not always send Retry-After: back off anyway.
                    retryAfter = Self.retryAfter(response.headers) ?? .seconds(1)
                    await limiter.pause(for: retryAfter!)
                }
                guard error.isRetryable else { throw error }
                lastError = error.description
            } catch let error as ConnectorError {
                guard error.isRetryable else { throw error }
                lastError = error.description
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                // Timeouts, resets, refused connections, bodies cut short.
                lastError = Self.short(error)
            }
            guard attempt < retry.maxAttempts else {
                throw ConnectorError.gaveUp(connector: connector, attempts: attempt, lastError: lastError)
            }
            stats.record(retry: true)
            Counter(label: "crm_sync_http_retries_total", dimensions: [("connector", connector)]).increment()
            let delay = retry.delay(afterAttempt: attempt, retryAfter: retryAfter)
            logger.debug("retrying", metadata: ["connector": "\(connector)", "attempt": "\(attempt)", "delay_ms": "\(Int(delay.seconds * 1000))", "error": "\(lastError)"])
            try await Task.sleep(for: delay)
        }
    }

    private func execute(_ spec: Request) async throws -> Response {
        var request = HTTPClientRequest(url: spec.url)
        request.method = spec.method
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "User-Agent", value: "crm-sync/1.0")
        for (name, value) in authorization { request.headers.add(name: name, value: value) }
        for (name, value) in spec.headers { request.headers.add(name: name, value: value) }
        if let body = spec.body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response = try await http.execute(request, timeout: .init(timeout))
        let expected = response.headers.first(name: "Content-Length").flatMap(Int.init)
        let body = try await response.body.collect(upTo: 64 << 20)
        let data = Data(body.readableBytesView)
        if let expected, expected != data.count {
            throw ConnectorError.malformedResponse(connector: connector, what: "body cut short (\(data.count) of \(expected) bytes)")
        }
        return Response(status: Int(response.status.code), headers: response.headers, body: data)
    }

    static func retryAfter(_ headers: HTTPHeaders) -> Duration? {
        guard let value = headers.first(name: "Retry-After") else { return nil }
        if let seconds = Double(value) { return .milliseconds(Int64(seconds * 1000)) }
        return nil
    }

    static func short(_ error: any Error) -> String {
        String(String(describing: error).prefix(200))
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        self = .milliseconds(Int64(duration.seconds * 1000))
    }
}
