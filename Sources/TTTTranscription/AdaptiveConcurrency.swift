/// How many requests a server gets at once, adapting to what it can take. A slow ASR queues what it
/// is sent; once its queue is longer than tttd's timeout, every request times out while the server
/// works on ones already given up, and nothing gets through again (the 2-hour soak at 20 lives saw
/// no window transcribed for over ten minutes, the ASR busy throughout). So the limit halves when a
/// request times out or is refused as overload (429, 503), and grows by one every `limit` answers,
/// between 1 and `maximum` (TCP's AIMD). The requests beyond it wait here, with no clock against them.
actor AdaptiveConcurrency {
    enum Outcome: Sendable {
        case answered
        /// Timed out, 429 or 503: the server has more than it can do.
        case overloaded
        /// Anything else (refused connection, bad answer): says nothing about its load.
        case failed
    }

    /// Handed out by `acquire`, given back to `release`.
    struct Ticket: Sendable {
        /// The number of cuts before this request began: an overload cuts once, not once per
        /// request that was already in flight when it began.
        fileprivate let cuts: Int
    }

    let maximum: Int
    private(set) var limit: Double
    private(set) var inFlight = 0
    private var cuts = 0
    private var waiters: [(id: Int, continuation: CheckedContinuation<Void, any Error>)] = []
    private var nextWaiterID = 0

    init(maximum: Int) {
        self.maximum = max(1, maximum)
        limit = Double(self.maximum)
    }

    var waiting: Int { waiters.count }

    /// Waits for a place, in arrival order; throws `CancellationError` if cancelled meanwhile.
    func acquire() async throws -> Ticket {
        if waiters.isEmpty && inFlight < Int(limit) {
            inFlight += 1
            return Ticket(cuts: cuts)
        }
        let id = nextWaiterID
        nextWaiterID += 1
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled { return continuation.resume(throwing: CancellationError()) }
                waiters.append((id, continuation))
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
        // `release` counted this request in flight when it handed over the place.
        return Ticket(cuts: cuts)
    }

    /// What a release changed, for the log.
    enum Change: Equatable, Sendable {
        case cut(to: Int, waiting: Int)
        /// Back at the maximum after a cut.
        case recovered
    }

    /// Gives the place back.
    @discardableResult
    func release(_ ticket: Ticket, _ outcome: Outcome) -> Change? {
        inFlight -= 1
        var change: Change?
        switch outcome {
        case .answered:
            let wasBelow = limit < Double(maximum)
            limit = min(Double(maximum), limit + 1 / limit)
            if wasBelow && limit == Double(maximum) { change = .recovered }
        case .overloaded where ticket.cuts == cuts:
            limit = max(1, (limit / 2).rounded(.down))
            cuts += 1
            change = .cut(to: Int(limit), waiting: waiters.count)
        case .overloaded, .failed:
            break
        }
        while inFlight < Int(limit), !waiters.isEmpty {
            inFlight += 1
            waiters.removeFirst().continuation.resume()
        }
        return change
    }

    private func cancelWaiter(_ id: Int) {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return }
        waiters.remove(at: index).continuation.resume(throwing: CancellationError())
    }
}
