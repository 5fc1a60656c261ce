import Foundation

/// A token bucket shared by every request of one connector, so a sync stays under the CRM's
/// documented rate instead of discovering it through 429s. `pause(for:)` holds everyone back after
/// a 429 with `Retry-After`.
public actor RateLimiter {
    private let ratePerSecond: Double
    private let burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant
    private var pausedUntil: ContinuousClock.Instant?
    private let clock = ContinuousClock()

    public init(ratePerSecond: Double, burst: Double? = nil) {
        self.ratePerSecond = max(ratePerSecond, 0.001)
        self.burst = max(burst ?? min(ratePerSecond, 10), 1)
        tokens = self.burst
        last = clock.now
    }

    public func acquire() async throws {
        while true {
            let now = clock.now
            if let until = pausedUntil, until > now {
                try await Task.sleep(until: until, clock: clock)
                continue
            }
            let elapsed = (now - last).seconds
            tokens = min(burst, tokens + elapsed * ratePerSecond)
            last = now
            if tokens >= 1 {
                tokens -= 1
                return
            }
            let wait = (1 - tokens) / ratePerSecond
            try await Task.sleep(for: .milliseconds(Int64((wait * 1000).rounded(.up))))
        }
    }

    public func pause(for duration: Duration) {
        let until = clock.now + duration
        if let current = pausedUntil, current > until { return }
        pausedUntil = until
        tokens = 0
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Exponential backoff with full jitter, bounded attempts.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxDelay: Duration

    public init(maxAttempts: Int = 6, baseDelay: Duration = .milliseconds(200), maxDelay: Duration = .seconds(20)) {
        self.maxAttempts = maxAttempts
        self.baseDelay = baseDelay
        self.maxDelay = maxDelay
    }

    /// The delay before attempt `attempt + 1`; a server's `Retry-After` wins when it asks for longer.
    public func delay(afterAttempt attempt: Int, retryAfter: Duration?) -> Duration {
        let exponential = baseDelay.seconds * pow(2, Double(attempt - 1))
        let capped = min(exponential, maxDelay.seconds)
        let jittered = Double.random(in: (capped / 2)...max(capped, capped / 2 + 0.001))
        let chosen = max(jittered, retryAfter?.seconds ?? 0)
        return .milliseconds(Int64(chosen * 1000))
    }
}
