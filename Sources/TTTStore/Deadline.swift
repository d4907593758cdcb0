import Synchronization
import TTTEventLoop

/// Runs `operation` but gives up after `limit`: a database that stops answering must turn into an
/// error for the caller, never a hang. The operation is cancelled and left to finish on its own.
func withDeadline<T: Sendable>(
    _ limit: Duration, what: String, _ operation: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = DeadlineRace<T>()
    return try await withCheckedThrowingContinuation { continuation in
        race.continuation.withLock { $0 = continuation }
        let work = Task {
            let result: Result<T, any Error>
            do { result = .success(try await operation()) } catch { result = .failure(error) }
            race.continuation.withLock { $0.take() }?.resume(with: result)
            race.timer.withLock { $0?.cancel() }
        }
        let timer = LoopTimer.after(limit) {
            if let pending = race.continuation.withLock({ $0.take() }) {
                work.cancel()
                pending.resume(throwing: StoreError.unavailable("no answer within \(limit) (\(what))"))
            }
        }
        race.timer.withLock { $0 = timer }
    }
}

/// Whoever takes the continuation first (the work or the timer) resumes the caller.
private final class DeadlineRace<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let timer = Mutex<LoopTimer?>(nil)
}
