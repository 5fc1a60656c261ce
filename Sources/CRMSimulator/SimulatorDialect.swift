import Foundation
import HTTPTypes
import Hummingbird

/// What the guard in front of every simulated endpoint does differently per CRM: how the token is
/// presented and what the CRM's own 401, 429 and 5xx bodies and headers look like. Auth, the
/// enforced limit and fault injection stay one piece of logic (`SimulatorServer.guarded`); only the
/// wording on the wire changes.
struct SimulatorDialect: Sendable {
    /// Whether the request carries `token` the way this CRM expects it.
    var authorized: @Sendable (_ request: Request, _ token: String) -> Bool
    var unauthorized: @Sendable () -> SimResponse
    /// `retryAfter` is the fault spec's `Retry-After` for injected 429s, nil for the enforced limit.
    var rateLimited: @Sendable (_ search: Bool, _ retryAfter: Int?) async -> SimResponse
    /// An injected 500 or 503.
    var failure: @Sendable (_ status: Int) -> SimResponse
    /// The answer once the day's request quota (`SimulatorState.dailyRequestLimit`) is used up.
    var quotaExhausted: @Sendable () -> SimResponse = {
        SimulatorServer.json(429, ["status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
                                   "correlationId": UUID().uuidString.lowercased(), "policyName": "DAILY"])
    }
}

extension SimulatorDialect {
    /// HubSpot: `Authorization: Bearer`, `{status, message, category}` bodies.
    static let hubSpot = SimulatorDialect(
        authorized: { request, token in request.headers[.authorization] == "Bearer \(token)" },
        unauthorized: {
            SimulatorServer.json(401, ["status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"])
        },
        rateLimited: { search, retryAfter in SimulatorServer.rateLimited(search: search, retryAfter: retryAfter) },
        failure: { status in
            status == 503
                ? SimulatorServer.json(503, ["status": "error", "message": "Service Unavailable", "category": "SERVICE_UNAVAILABLE"])
                : SimulatorServer.json(status, ["status": "error", "message": "internal error", "category": "INTERNAL_ERROR"])
        })
}
