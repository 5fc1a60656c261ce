import CRMSyncCore
import Foundation

/// How one CRM words the refusals `guarded` answers with before a request reaches its API.
struct WireErrors: Sendable {
    var unauthorized: @Sendable () -> SimResponse
    /// The answer once the day's request quota (`SimulatorState.dailyRequestLimit`) is used up.
    var quotaExhausted: @Sendable () -> SimResponse
    /// The CRM's answer to too many requests per second; nil for a CRM without a per-second limit
    /// (Salesforce), where neither the enforced rate nor injected 429s apply.
    var rateLimited: (@Sendable (_ search: Bool, _ retryAfter: Int?) -> SimResponse)?
    var serverError: @Sendable () -> SimResponse
    var unavailable: @Sendable () -> SimResponse

    static func of(_ kind: CRMKind) -> WireErrors {
        switch kind {
        case .hubspot, .pipedrive: .hubSpot
        case .salesforce: .salesforce
        }
    }

    static let hubSpot = WireErrors(
        unauthorized: {
            SimulatorServer.json(401, ["status": "error", "message": "Authentication credentials not found.", "category": "INVALID_AUTHENTICATION"])
        },
        quotaExhausted: {
            SimulatorServer.json(429, ["status": "error", "message": "You have reached your daily limit.", "errorType": "RATE_LIMIT",
                                       "correlationId": UUID().uuidString.lowercased(), "policyName": "DAILY"])
        },
        rateLimited: { search, retryAfter in SimulatorServer.rateLimited(search: search, retryAfter: retryAfter) },
        serverError: { SimulatorServer.json(500, ["status": "error", "message": "internal error", "category": "INTERNAL_ERROR"]) },
        unavailable: { SimulatorServer.json(503, ["status": "error", "message": "Service Unavailable", "category": "SERVICE_UNAVAILABLE"]) })
}
