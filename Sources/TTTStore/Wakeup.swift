import Synchronization
import TTTEventLoop

/// Ends a polling loop's wait early when new work is announced, so that the loop can look at the
/// database rarely on its own and still start at once on work just committed (the daemon rings it
/// on each NOTIFY of `tttd_events`, sent in the transaction that wrote the work). A ring while no
/// one waits is kept for the next wait: an announcement that arrives between a look that found
/// nothing and the wait after it is not lost.
public final class Wakeup: Sendable {
    private struct State {
        var rung = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    public func ring() {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            guard !state.waiters.isEmpty else {
                state.rung = true
                return []
            }
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns when rung (now, if it was rung since the last wait), after `limit`, or when the
    /// task is cancelled, whichever comes first. The limit is a loop timer: no task of its own,
    /// and no wake of Dispatch's timer thread for the looks that find nothing.
    public func wait(atMost limit: Duration) async {
        if takeRing() { return }
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            return state.nextID
        }
        // The handler and the registration take the same lock, and the task is marked cancelled
        // before its handler runs: either the handler finds the waiter, or the body sees the
        // cancellation and does not wait.
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow = state.withLock { state in
                    if Task.isCancelled || state.rung {
                        state.rung = false
                        return true
                    }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { return continuation.resume() }
                // Left to fire after a ring: the waiter is gone by then.
                _ = LoopTimer.after(limit) { [weak self] in self?.resumeWaiter(id) }
            }
        } onCancel: {
            resumeWaiter(id)
        }
    }

    private func takeRing() -> Bool {
        state.withLock { state in
            defer { state.rung = false }
            return state.rung
        }
    }

    private func resumeWaiter(_ id: UInt64) {
        state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
    }
}
