import Synchronization

/// Polls `condition` until it holds or `deadline` passes, and says whether it held.
///
/// Tests wait on outcomes this way instead of sleeping a fixed time or asserting on elapsed
/// time: the deadline is generous for a busy machine (the suite beside `stress-ng --cpu 2`) and
/// only keeps a broken run from hanging. Cancellation ends the wait (by throwing).
public func eventually(
    within deadline: Duration = .seconds(120), every interval: Duration = .milliseconds(50),
    isolation: isolated (any Actor)? = #isolation, _ condition: () async throws -> Bool
) async throws -> Bool {
    let end = ContinuousClock.now + deadline
    while true {
        if try await condition() { return true }
        guard ContinuousClock.now < end else { return false }
        try await Task.sleep(for: interval)
    }
}

/// Whether `task` ends before `bound` passes: a watchdog, not a speed assertion (the bound is far
/// above what the work needs; false means it would have hung the run). The wait happens in an
/// unstructured task, so a hung `task` cannot hang the caller as well.
public func ends<T: Sendable>(_ task: Task<T, any Error>, within bound: Duration) async throws -> Bool {
    let ended = Mutex(false)
    Task {
        _ = try? await task.value
        ended.withLock { $0 = true }
    }
    return try await eventually(within: bound) { ended.withLock { $0 } }
}
