import NIOCore
import NIOPosix
import Synchronization

/// `Task.sleep` on an event loop's timer instead of Dispatch's: the loop wakes from its own epoll
/// timeout, where Dispatch wakes its timer thread and then a worker. For the sleeps taken on every
/// check (the egress's pace, the database deadline).
public enum LoopSleep {
    /// Returns at `deadline`, or throws `CancellationError` as soon as the task is cancelled.
    public static func sleep(until deadline: ContinuousClock.Instant) async throws {
        let delay = ContinuousClock.now.duration(to: deadline)
        guard delay > .zero else { return try Task.checkCancellation() }
        let wait = Wait()
        try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (continuation: UnsafeContinuation<Void, any Error>) in
                let loop = MultiThreadedEventLoopGroup.singleton.any()
                // The wait is the timer's handler: no closure, promise or future per sleep.
                guard let timer = try? loop.scheduleCallback(in: TimeAmount(delay), handler: wait) else {
                    // The loops are shut down: the process is ending.
                    return continuation.resume(throwing: CancellationError())
                }
                if !wait.begin(continuation, timer) { timer.cancel() }
            }
        } onCancel: {
            wait.end(CancellationError())
        }
    }

    public static func sleep(for duration: Duration) async throws {
        try await sleep(until: .now + duration)
    }

    /// Whoever comes first — the timer or the cancellation — resumes the sleeper, once: `ended`,
    /// under the lock, is what makes it once, so the continuation need not be a checked one (a
    /// checked continuation allocates and frees an object on every sleep: one per check).
    private final class Wait: NIOScheduledCallbackHandler, Sendable {
        private struct State {
            var continuation: UnsafeContinuation<Void, any Error>?
            var timer: NIOScheduledCallback?
            var ended: (any Error)??
        }
        private let state = Mutex(State())

        /// False when the sleep already ended (cancelled before it began): the caller is resumed here.
        func begin(_ continuation: UnsafeContinuation<Void, any Error>, _ timer: NIOScheduledCallback) -> Bool {
            let ended: (any Error)?? = state.withLock { state in
                if let ended = state.ended { return .some(ended) }
                state.continuation = continuation
                state.timer = timer
                return nil
            }
            guard let ended else { return true }
            if let error = ended { continuation.resume(throwing: error) } else { continuation.resume() }
            return false
        }

        func handleScheduledCallback(eventLoop: some EventLoop) {
            end(nil)
        }

        func end(_ error: (any Error)?) {
            let (continuation, timer) = state.withLock { state -> (UnsafeContinuation<Void, any Error>?, NIOScheduledCallback?) in
                guard state.ended == nil else { return (nil, nil) }
                state.ended = .some(error)
                defer { state.continuation = nil; state.timer = nil }
                return (state.continuation, state.timer)
            }
            if error != nil { timer?.cancel() }
            guard let continuation else { return }
            if let error { continuation.resume(throwing: error) } else { continuation.resume() }
        }
    }
}
