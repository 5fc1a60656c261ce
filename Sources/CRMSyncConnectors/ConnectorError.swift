/// Why a connector could not go on. Each message says what happened and what to do, and never
/// includes tokens or response bodies beyond the CRM's own error code and message.
public enum ConnectorError: Error, CustomStringConvertible, Equatable {
    /// The CRM's quota for the day (or window) is used up: stop cleanly, keep the cursor, resume next run.
    case quotaExhausted(connector: String, message: String)
    case authentication(connector: String, message: String)
    /// Too many requests right now, said some other way than a 429 (Salesforce's 403
    /// `REQUEST_LIMIT_EXCEEDED` for concurrent requests): retried with backoff.
    case throttled(connector: String, message: String)
    case http(connector: String, status: Int, message: String)
    case gaveUp(connector: String, attempts: Int, lastError: String)
    case malformedResponse(connector: String, what: String)
    case unsupported(connector: String, what: String)

    public var description: String {
        switch self {
        case .quotaExhausted(let connector, let message):
            "\(connector): API quota exhausted (\(message)); the cursor is kept and the next run resumes"
        case .authentication(let connector, let message):
            "\(connector): authentication failed (\(message)); check the token in the connector's token_env"
        case .throttled(let connector, let message):
            "\(connector): throttled (\(message))"
        case .http(let connector, let status, let message):
            "\(connector): HTTP \(status): \(message)"
        case .gaveUp(let connector, let attempts, let lastError):
            "\(connector): gave up after \(attempts) attempts (last error: \(lastError)); the cursor was not advanced"
        case .malformedResponse(let connector, let what):
            "\(connector): unexpected response: \(what)"
        case .unsupported(let connector, let what):
            "\(connector): \(what) is not supported"
        }
    }

    /// Whether retrying the same request may succeed.
    var isRetryable: Bool {
        switch self {
        case .http(_, let status, _): status == 429 || status >= 500
        case .malformedResponse, .throttled: true
        default: false
        }
    }
}
