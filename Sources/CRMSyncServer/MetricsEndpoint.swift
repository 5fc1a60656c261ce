import Foundation
import Logging
import Metrics
import Prometheus
import Synchronization

/// The process-wide Prometheus registry behind swift-metrics. `bootstrap()` may be called more
/// than once (tests start several servers); only the first call installs the factory.
public enum MetricsRegistry {
    public static let shared = PrometheusCollectorRegistry()
    private static let installed = Mutex(false)

    public static func bootstrap() {
        let first = installed.withLock { done in
            defer { done = true }
            return !done
        }
        if first { MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: shared)) }
    }

    /// Prometheus text exposition format.
    public static func exposition() -> String {
        shared.emitToString()
    }
}
