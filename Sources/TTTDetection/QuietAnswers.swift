import Synchronization
import TTTStore

/// Lookup answers that change nothing but their account's row (an idle account still offline),
/// waiting for the next claim to write them in its statement, or for the fallback write when no
/// claim comes (`DetectionService.writeQuietAnswers`). An answer lost to a crash before its write
/// only means the account's lease runs out and it is checked again.
final class QuietAnswers: Sendable {
    private struct Waiting {
        var answers: [Store.QuietAnswer] = []
        /// When the oldest of them came.
        var since: ContinuousClock.Instant?
    }

    private let waiting = Mutex(Waiting())

    func append(_ answer: Store.QuietAnswer) {
        waiting.withLock {
            if $0.answers.isEmpty { $0.since = .now }
            $0.answers.append(answer)
        }
    }

    /// Takes them all, or none while the oldest is younger than `minimumAge`.
    func take(olderThan minimumAge: Duration = .zero) -> [Store.QuietAnswer] {
        waiting.withLock { waiting in
            guard let since = waiting.since, ContinuousClock.now - since >= minimumAge else { return [] }
            defer { waiting = Waiting() }
            return waiting.answers
        }
    }

    /// Puts back answers whose write was interrupted (tttd stopping), ahead of any newer ones.
    func putBack(_ answers: [Store.QuietAnswer]) {
        guard !answers.isEmpty else { return }
        waiting.withLock {
            $0.answers.insert(contentsOf: answers, at: 0)
            $0.since = $0.since ?? .now
        }
    }
}
