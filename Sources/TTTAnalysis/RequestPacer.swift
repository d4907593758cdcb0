import Foundation
import Synchronization

/// Spaces requests evenly at a per-minute budget: every request to the model goes through it,
/// retries and format fallbacks included, so a budget like Groq's 30 per minute is never exceeded
/// by a burst.
public final class RequestPacer: Sendable {
    private let state: Mutex<(perMinute: Double, next: ContinuousClock.Instant)>

    public init(perMinute: Double) {
        state = Mutex((perMinute, .now))
    }

    public func update(perMinute: Double) {
        state.withLock { $0.perMinute = perMinute }
    }

    /// Waits for this request's turn (throws when the task is cancelled).
    public func wait() async throws {
        let turn = state.withLock { state -> ContinuousClock.Instant in
            let turn = max(state.next, .now)
            state.next = turn + .seconds(60 / max(state.perMinute, 0.01))
            return turn
        }
        if turn > .now { try await Task.sleep(until: turn, clock: .continuous) }
    }
}
