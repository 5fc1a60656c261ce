import CRMSyncCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore

/// The CRM simulator as an HTTP server on loopback: one CRM's wire format, the account's limits
/// answered the way that CRM answers them, and injected faults.
public struct SimulatorServer: Sendable {
    public let kind: CRMKind
    public let state: SimulatorState
    /// The token clients must send (HubSpot `Authorization: Bearer …`, Pipedrive `x-api-token`).
    public let token: String

    public init(kind: CRMKind, state: SimulatorState, token: String = "sim-token") {
        self.kind = kind
        self.state = state
        self.token = token
    }

    /// A ready-to-run application bound to `host:port` (0 picks a free port, reported to `onRunning`).
    public func application(
        host: String = "127.0.0.1", port: Int = 0, logger: Logger? = nil, onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = Router()
        let state = self.state
        let token = self.token
        // Each CRM's endpoints sit behind the same guard, speaking that CRM's dialect.
        func guarded(_ dialect: SimulatorDialect) -> Guard {
            { request, search, handler in
                try await Self.guarded(request: request, search: search, state: state, token: token, dialect: dialect, handler: handler)
            }
        }
        switch kind {
        case .hubspot:
            HubSpotAPI(state: state).register(on: router, guarded: guarded(.hubSpot))
        case .pipedrive:
            PipedriveAPI(state: state).register(on: router, guarded: guarded(PipedriveAPI.dialect(state: state)))
        case .salesforce:
            SalesforceAPI(state: state).register(on: router, guarded: guarded(.salesforce))
        }
        router.get("/_sim/health") { _, _ in "ok" }
        return Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "crm-simulator"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) },
            logger: logger ?? Logger(label: "crm-simulator"))
    }

    /// Authentication, the day's request quota, the enforced rate limit, then injected faults, in
    /// that order; refusals are worded the way the simulated CRM words them (`errors`).
    static func guarded(
        request: Request, search: Bool, state: SimulatorState, token: String, dialect: SimulatorDialect = .hubSpot,
        handler: @Sendable () async throws -> SimResponse
    ) async throws -> Response {
        let path = request.uri.path
        guard dialect.authorized(request, token) else {
            await state.record(.init(method: "\(request.method)", path: path, page: "", status: 401))
            return dialect.unauthorized().response
        }
        if await !state.spendDailyRequest() {
            let refusal = dialect.quotaExhausted()
            await state.record(.init(method: "\(request.method)", path: path, page: "", status: refusal.status))
            return refusal.response
        }
        let faults = await state.faults
        if await !state.admit(search: search) {
            let refusal = await dialect.rateLimited(search, nil)
            await state.record(.init(method: "\(request.method)", path: path, page: "", status: refusal.status))
            return refusal.response
        }
        if await state.roll(faults.rateLimited) {
            let refusal = await dialect.rateLimited(search, faults.retryAfterSeconds)
            await state.record(.init(method: "\(request.method)", path: path, page: "", status: refusal.status))
            return refusal.response
        }
        if await state.roll(faults.serverError) {
            await state.record(.init(method: "\(request.method)", path: path, page: "", status: 500))
            return dialect.failure(500).response
        }
        if await state.roll(faults.unavailable) {
            await state.record(.init(method: "\(request.method)", path: path, page: "", status: 503))
            return dialect.failure(503).response
        }
        if await state.roll(faults.hang) {
            try await Task.sleep(for: faults.hangDuration)
        } else if await state.roll(faults.slow) {
            try await Task.sleep(for: .milliseconds(300 + 100 * Int64(await state.randomInt(0..<5))))
        }
        var response = try await handler()
        if (200..<300).contains(response.status), await state.roll(faults.truncate) {
            // The body ends half way through the JSON.
            response.body = response.body.prefix(response.body.count / 2)
        }
        return response.response
    }

    static func rateLimited(search: Bool, retryAfter: Int?) -> SimResponse {
        var response = json(429, [
            "status": "error", "message": search ? "You have reached your secondly limit." : "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT", "correlationId": UUID().uuidString.lowercased(),
            "policyName": search ? "SECONDLY" : "TEN_SECONDLY_ROLLING",
        ])
        response.headers["X-HubSpot-RateLimit-Max"] = search ? "5" : "100"
        response.headers["X-HubSpot-RateLimit-Remaining"] = "0"
        if let retryAfter { response.headers["Retry-After"] = "\(retryAfter)" }
        return response
    }

    static func json(_ status: Int, _ object: Any) -> SimResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        return SimResponse(status: status, body: data)
    }
}

typealias Guard = @Sendable (Request, Bool, @escaping @Sendable () async throws -> SimResponse) async throws -> Response

/// A response before faults are applied to it.
struct SimResponse: Sendable {
    var status: Int
    var body: Data
    var headers: [String: String] = [:]

    var response: Response {
        var fields: HTTPFields = [.contentType: "application/json;charset=utf-8"]
        for (name, value) in headers { if let field = HTTPField.Name(name) { fields[field] = value } }
        return Response(status: .init(code: status), headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}


