import Foundation
import TTTDomain
import TTTEventLoop
import TTTTikTok

/// What `tttctl status` shows of one egress.
public struct EgressSnapshot: Sendable, Codable, Equatable {
    public var name: String
    public var rateRPS: Double
    /// 1 at full budget; lower while the egress recovers from a block.
    public var slowdown: Double
    public var pausedForS: Double
    public var lastBlock: String?
    public var requests: Int
    public var blocks: Int
}

/// The request budget of one egress (the direct connection or one proxy): two request starts are
/// `1.02/rate` apart on average, ±3 % at random, and never less than `0.99/rate`. Jitter that never
/// makes a burst: any one second holds at most 1 + rate/0.99 starts, and 98 % of the budget is used.
/// One waiting request at a time — the one whose turn it is — sleeps until its start; the others
/// queue behind it without a timer. A request's timer wakes it once, however late the machine runs
/// (waking each at a start fixed in advance, then sleeping again when the one before had started
/// late, cost seven wake-ups a request on a busy machine). A block signal or a 429 pauses the egress
/// (Retry-After when given, up to `longestRetryAfter`) and cuts its rate, for the requests already
/// waiting too; it recovers step by step.
actor EgressPacer: FollowUpPacing {

    let name: String
    private var rate: Double
    private let concurrency: Int
    private var factor = 1.0
    private var lastStart: ContinuousClock.Instant?
    /// When the last request was due. The next is timed from there, so that a late wake-up (a busy
    /// machine) does not lengthen every gap; a gap back at most, so that an egress that was idle
    /// does not make up for lost time with a run of requests at the shortest gap.
    private var lastDue: ContinuousClock.Instant?
    /// The gap after `lastDue`, in spacings at the current rate: 0.99–1.05, drawn at each start.
    private var nextGap = 1.0
    /// Whether a request holds the turn: it waits for its start, or was handed the turn and has not
    /// run yet. The ones after it wait in `queued`, in order.
    private var timing = false
    private var queued: [UnsafeContinuation<Void, Never>] = []
    private var pausedUntil = ContinuousClock.now
    private var lastBlockAt: ContinuousClock.Instant?
    private var lastRaise = ContinuousClock.now
    private var lastBlock: String?
    private(set) var inFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var requests = 0
    private var blocks = 0
    private let metrics: EgressMetrics
    private var random = SeededRandom(seed: nil)

    static let minimumFactor = 1.0 / 64
    /// The longest pause a `Retry-After` buys. Every live that starts behind a paused egress waits
    /// for it to be seen; past this, one request tells whether the block still holds (and cuts the
    /// rate again if it does), where a longer value — a proxy's quota, a wrong or hostile header —
    /// would leave those accounts unwatched for hours.
    static let longestRetryAfter = Duration.seconds(900)

    /// The gap between two requests at the configured rate.
    private var baseSpacing: Duration { .seconds(1 / max(rate, 1e-6)) }
    /// Quiet time before the rate doubles again: twenty requests' worth, between 5 s and 2 min.
    private var recoveryStep: Duration { min(max(baseSpacing * 20, .seconds(5)), .seconds(120)) }

    init(name: String, rate: Double, concurrency: Int) {
        self.name = name
        self.rate = rate
        self.concurrency = max(1, concurrency)
        metrics = EgressMetrics(egress: name)
    }

    func setRate(_ rate: Double) { self.rate = rate }

    /// Waits for a free place and the next start; the caller must `finish` afterwards.
    func acquire() async throws {
        while inFlight >= concurrency {
            await withCheckedContinuation { waiters.append($0) }
        }
        inFlight += 1
        do {
            try await start()
        } catch {
            release()
            throw error
        }
    }

    /// Waits for the next start within a place already held: a redirect's next hop, a retry.
    func nextStart() async throws {
        try await start()
    }

    private func start() async throws {
        // Resumed by the request before as it starts (or gives up); `timing` stays set meanwhile,
        // so a request arriving in between queues behind this one.
        if timing { await withUnsafeContinuation { queued.append($0) } }
        timing = true
        defer { passTurn() }
        let clock = ContinuousClock()
        var earliest = earliestStart
        // Checked again on waking: a block may have come, or the rate changed, meanwhile.
        while clock.now < earliest {
            try await LoopSleep.sleep(until: earliest)
            earliest = earliestStart
        }
        try Task.checkCancellation()
        let now = clock.now
        lastDue = max(earliest, now - spacing)
        lastStart = now
        nextGap = Double.random(in: 0.99..<1.05, using: &random)
        requests += 1
    }

    private var earliestStart: ContinuousClock.Instant {
        guard let lastStart, let lastDue else { return pausedUntil }
        return max(pausedUntil, lastDue + spacing * nextGap, lastStart + spacing * 0.99)
    }

    /// The gap between two requests at the current rate, before jitter.
    private var spacing: Duration { .seconds(1 / max(rate * factor, 1e-6)) }

    /// Hands the turn to the next request queued, which sleeps until its start. Resumed now rather
    /// than by a timer at its start: its sleep is what a stop cancels, even while the egress is
    /// paused for a block.
    private func passTurn() {
        if queued.isEmpty { timing = false } else { queued.removeFirst().resume() }
    }

    /// Ends a request; a block signal slows this egress down.
    func finish(block: BlockSignal?) {
        release()
        let now = ContinuousClock.now
        guard let block else {
            // Gradual recovery: double the rate after each quiet minute, up to the configured one.
            if factor < 1, now - (lastBlockAt ?? now) >= recoveryStep, now - lastRaise >= recoveryStep {
                factor = min(1, factor * 2)
                lastRaise = now
                metrics.rate.record(factor)
            }
            return
        }
        blocks += 1
        lastBlockAt = now
        lastRaise = now
        factor = max(Self.minimumFactor, factor / 4)
        metrics.count(block)
        metrics.rate.record(factor)
        // Without Retry-After, wait four gaps at the new, slower rate (capped at 5 min): blocks last
        // minutes to hours, and each further block while probing cuts the rate again.
        let probe = min(baseSpacing * (4 / factor), .seconds(300))
        let pause: Duration
        switch block {
        case .tooManyRequests(let retryAfter?):
            pause = min(retryAfter, Self.longestRetryAfter)
            lastBlock = "429, retry after \(Self.seconds(retryAfter))" + (retryAfter > pause ? "; asking again after \(Self.seconds(pause))" : "")
        case .tooManyRequests(nil):
            pause = probe
            lastBlock = "429"
        case .challengePage:
            pause = probe
            lastBlock = "challenge page"
        case .emptyBody:
            pause = probe
            lastBlock = "empty answers"
        case .forbidden:
            pause = probe
            lastBlock = "403"
        case .roomInfoRefused:
            pause = probe
            lastBlock = "room info refused (4003110) although the session was sent"
        }
        pausedUntil = max(pausedUntil, now + pause)
    }

    /// "120 s": what `tttctl status` shows of a pause.
    private static func seconds(_ duration: Duration) -> String { "\(Int(duration.asSeconds.rounded(.up))) s" }

    private func release() {
        inFlight = max(0, inFlight - 1)
        if !waiters.isEmpty { waiters.removeFirst().resume() }
    }

    /// The rate this egress runs at now.
    var effectiveRate: Double { rate * factor }

    func snapshot() -> EgressSnapshot {
        let paused = max(.zero, pausedUntil - .now)
        return EgressSnapshot(name: name, rateRPS: rate * factor, slowdown: factor, pausedForS: paused.asSeconds,
                        lastBlock: lastBlock, requests: requests, blocks: blocks)
    }
}
