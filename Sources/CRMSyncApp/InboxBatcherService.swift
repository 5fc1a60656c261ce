import CRMSyncServer
import ServiceLifecycle

/// Runs the inbox batcher inside `serve`'s service group. Listed before the HTTP server, so on
/// SIGTERM the server stops first and finishes its in-flight requests (which wait on the
/// batcher) before the batcher drains and stops.
public struct InboxBatcherService: Service {
    let batcher: InboxBatcher

    public init(_ batcher: InboxBatcher) {
        self.batcher = batcher
    }

    public func run() async throws {
        await withGracefulShutdownHandler {
            await batcher.run()
        } onGracefulShutdown: {
            batcher.finish()
        }
    }
}
