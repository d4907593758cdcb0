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
/// `1.02/rate` apart on average, ±3 % at random, and never less than `0.99/rate` — also when the
/// machine wakes several waiting requests late at once. Jitter that never makes a burst: any one
/// second holds at most 1 + rate/0.99 starts, and 98 % of the budget is used. A block signal or a
/// 429 pauses the egress (Retry-After when given) and cuts its rate, for the requests already
/// waiting for their slot too; it recovers step by step.
actor EgressPacer {

    let name: String
    private var rate: Double
    private let concurrency: Int
    private var factor = 1.0
    private var nextSlot = ContinuousClock.now
    private var lastStart: ContinuousClock.Instant?
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

    /// Waits for the next slot and a free place; the caller must `finish` afterwards.
    func acquire() async throws {
        while inFlight >= concurrency {
            await withCheckedContinuation { waiters.append($0) }
        }
        inFlight += 1
        let clock = ContinuousClock()
        var start = max(nextSlot, clock.now, pausedUntil)
        nextSlot = start + jitteredGap()
        do {
            // Checked again on waking, when other requests may have started or a block come meanwhile.
            while true {
                try await LoopSleep.sleep(until: start)
                var earliest = pausedUntil
                if let lastStart { earliest = max(earliest, lastStart + shortestGap) }
                if clock.now >= earliest { break }
                start = earliest
            }
        } catch {
            release()
            throw error
        }
        let started = clock.now
        lastStart = started
        // A late start (a busy machine, a block) must not make the next slots come sooner.
        nextSlot = max(nextSlot, started + jitteredGap())
        requests += 1
    }

    /// The gap between two requests at the current rate: 0.99–1.05 times its inverse.
    private func jitteredGap() -> Duration {
        .seconds(Double.random(in: 0.99..<1.05, using: &random) / max(rate * factor, 1e-6))
    }
    private var shortestGap: Duration { .seconds(0.99 / max(rate * factor, 1e-6)) }

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
            pause = retryAfter
            lastBlock = "429, retry after \(retryAfter)"
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
        }
        pausedUntil = max(pausedUntil, now + pause)
        nextSlot = max(nextSlot, pausedUntil)
    }

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
