import CRMSyncStorage
import Logging
import Metrics
import PostgresNIO
import Synchronization

/// Group commit for the webhook inbox. Concurrent requests hand their events here and wait; a few
/// commit loops each take whatever has gathered (up to `maxEvents`), write it in one statement and
/// then release every request in the batch. Under load a commit carries many requests, so
/// throughput is not bounded by one WAL flush per request; when idle a request waits at most
/// `linger` plus one commit.
public final class InboxBatcher: InboxWriter {
    public struct Settings: Sendable {
        /// A batch closes at this many events...
        public var maxEvents: Int
        /// ...or this long after the first event arrived at an idle loop.
        public var linger: Duration
        /// Commits in flight at once; more than one hides the round trip of each.
        public var concurrentCommits: Int

        public init(maxEvents: Int = 2_000, linger: Duration = .milliseconds(1), concurrentCommits: Int = 2) {
            self.maxEvents = max(1, maxEvents)
            self.linger = linger
            self.concurrentCommits = max(1, concurrentCommits)
        }
    }

    struct Waiter: Sendable {
        var rows: [InboxEvent.Sourced]
        var continuation: CheckedContinuation<Void, any Error>
    }

    struct State: Sendable {
        var waiting: [Waiter] = []
        var events = 0
        var idle: [CheckedContinuation<Void, Never>] = []
        var finishing = false
    }

    let settings: Settings
    let client: PostgresClient
    let logger: Logger
    private let state = Mutex(State())

    public init(client: PostgresClient, logger: Logger, settings: Settings = Settings()) {
        self.client = client
        self.logger = logger
        self.settings = settings
    }

    /// Returns once the events are committed (or were already in the inbox).
    public func store(source: String, events: [InboxEvent]) async throws {
        guard !events.isEmpty else { return }
        let rows = events.map { InboxEvent.Sourced(source: source, event: $0) }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome: (wake: CheckedContinuation<Void, Never>?, refused: Bool) = state.withLock { state in
                if state.finishing { return (nil, true) }
                state.waiting.append(Waiter(rows: rows, continuation: continuation))
                state.events += rows.count
                return (state.idle.popLast(), false)
            }
            if outcome.refused { continuation.resume(throwing: InboxError.shuttingDown) }
            outcome.wake?.resume()
        }
    }

    /// Runs the commit loops until `finish()` (or cancellation), then commits what is still
    /// waiting and returns: a request that was accepted into a batch is always answered.
    public func run() async {
        await withTaskCancellationHandler {
            await withDiscardingTaskGroup { group in
                for _ in 0..<settings.concurrentCommits {
                    group.addTask { await self.commitLoop() }
                }
            }
        } onCancel: {
            finish()
        }
    }

    /// Stops taking new events; `run()` returns once everything already handed in is committed.
    public func finish() {
        let idle = state.withLock { state in
            state.finishing = true
            defer { state.idle.removeAll() }
            return state.idle
        }
        for continuation in idle { continuation.resume() }
    }

    private func commitLoop() async {
        while let batch = await nextBatch() {
            let rows = batch.flatMap(\.rows)
            do {
                try await EventInbox.commit(rows, client: client, logger: logger)
                Counter(label: "crm_sync_inbox_commits_total").increment()
                Recorder(label: "crm_sync_inbox_batch_events").record(rows.count)
                for waiter in batch { waiter.continuation.resume() }
            } catch {
                // One bad request must not fail its neighbours: retry each request on its own.
                Counter(label: "crm_sync_inbox_commit_errors_total").increment()
                if batch.count == 1 {
                    batch[0].continuation.resume(throwing: error)
                    continue
                }
                for waiter in batch {
                    do {
                        try await EventInbox.commit(waiter.rows, client: client, logger: logger)
                        waiter.continuation.resume()
                    } catch {
                        waiter.continuation.resume(throwing: error)
                    }
                }
            }
        }
    }

    /// Waits for work, lingers briefly so concurrent requests can join, and takes a batch; nil
    /// once finishing and nothing is left.
    private func nextBatch() async -> [Waiter]? {
        while true {
            let (hasWork, finishing) = state.withLock { ($0.events > 0, $0.finishing) }
            if hasWork {
                if !finishing, settings.linger > .zero, state.withLock({ $0.events }) < settings.maxEvents {
                    try? await Task.sleep(for: settings.linger)
                }
                let batch = take()
                if !batch.isEmpty { return batch }
                continue
            }
            if finishing { return nil }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if state.events > 0 || state.finishing { return true }
                    state.idle.append(continuation)
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// Whole requests, oldest first, up to `maxEvents` (a single larger request goes alone).
    private func take() -> [Waiter] {
        state.withLock { state in
            var taken = 0
            var count = 0
            for waiter in state.waiting {
                if count > 0, count + waiter.rows.count > settings.maxEvents { break }
                count += waiter.rows.count
                taken += 1
            }
            let batch = Array(state.waiting.prefix(taken))
            state.waiting.removeFirst(taken)
            state.events -= count
            return batch
        }
    }
}
