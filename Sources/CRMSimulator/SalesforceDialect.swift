import CRMSyncCore
import Foundation

extension SimulatorDialect {
    /// Salesforce: `Authorization: Bearer <session id>`; every refusal is a JSON array of
    /// `{errorCode, message}`, and there is no 429: too many requests at once is a 403
    /// `REQUEST_LIMIT_EXCEEDED`, like the day's quota, told apart only by the message. Injected "429"
    /// faults therefore come out as that 403.
    static let salesforce = SimulatorDialect(
        authorized: { request, token in request.headers[.authorization] == "Bearer \(token)" },
        unauthorized: { WireErrors.sfError(401, "INVALID_SESSION_ID", "Session expired or invalid") },
        rateLimited: { _, _ in WireErrors.sfError(403, "REQUEST_LIMIT_EXCEEDED", "ConcurrentPerOrgLongTxn Limit exceeded.") },
        failure: { status in
            status == 503
                ? WireErrors.sfError(503, "SERVER_UNAVAILABLE", "Service temporarily unavailable, please retry.")
                : WireErrors.sfError(status, "UNKNOWN_EXCEPTION",
                                     "An unexpected error occurred. Please include this ErrorId if you contact support: 1183573417-42 (-1)")
        },
        quotaExhausted: { WireErrors.sfError(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.") })
}

/// Salesforce's error body shape, for the API handlers too.
enum WireErrors {
    static func sfError(_ status: Int, _ code: String, _ message: String) -> SimResponse {
        SimulatorServer.json(status, [["errorCode": code, "message": message]])
    }
}
