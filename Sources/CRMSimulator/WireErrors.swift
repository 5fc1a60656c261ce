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

extension WireErrors {
    /// Salesforce words every refusal as a JSON array of `{errorCode, message}` and has no 429: too
    /// many requests at once is a 403 `REQUEST_LIMIT_EXCEEDED`, like the day's quota, told apart
    /// only by the message. Injected "429" faults therefore come out as that 403.
    static let salesforce = WireErrors(
        unauthorized: { sfError(401, "INVALID_SESSION_ID", "Session expired or invalid") },
        quotaExhausted: { sfError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.") },
        rateLimited: { _, _ in sfError(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.") },
        serverError: {
            sfError(500, "UNKNOWN_EXCEPTION",
                    "An unexpected error occurred. Please include this ErrorId if you contact support: 1183573417-42 (-1)")
        },
        unavailable: { sfError(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable, please retry.") })

    static func sfError(_ status: Int, _ code: String, _ message: String) -> SimResponse {
        SimulatorServer.json(status, [["errorCode": code, "message": message]])
    }
}
