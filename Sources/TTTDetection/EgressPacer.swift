import Foundation
import TTTDomain
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

/// The request budget of one egress (the direct connection or one proxy): requests start on a grid
/// of slots `1/rate` apart, each at a random point inside the first fifth of its slot. Any window
/// of W seconds thus holds at most W×rate + 1 requests: jitter without bursts. A block signal or a
/// 429 pauses the egress (Retry-After when given) and cuts its rate; it recovers step by step.
actor EgressPacer {

    let name: String
    private var rate: Double
    private let concurrency: Int
    private var factor = 1.0
    private var nextSlot = ContinuousClock.now
    private var pausedUntil = ContinuousClock.now
    private var lastBlockAt: ContinuousClock.Instant?
    private var lastRaise = ContinuousClock.now
    private var lastBlock: String?
    private var inFlight = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var requests = 0
    private var blocks = 0

    static let minimumFactor = 1.0 / 64
    static let recoveryStep = Duration.seconds(60)

    init(name: String, rate: Double, concurrency: Int) {
        self.name = name
        self.rate = rate
        self.concurrency = max(1, concurrency)
    }

    func setRate(_ rate: Double) { self.rate = rate }

    /// Waits for the next slot and a free place; the caller must `finish` afterwards.
    func acquire() async throws {
        while inFlight >= concurrency {
            await withCheckedContinuation { waiters.append($0) }
        }
        inFlight += 1
        let clock = ContinuousClock()
        let now = clock.now
        let spacing = Duration.seconds(1 / max(rate * factor, 1e-6))
        let slot = max(nextSlot, now, pausedUntil)
        nextSlot = slot + spacing
        let start = slot + spacing * Double.random(in: 0..<0.2)
        do {
            try await clock.sleep(until: start)
        } catch {
            release()
            throw error
        }
        requests += 1
    }

    /// Ends a request; a block signal slows this egress down.
    func finish(block: BlockSignal?) {
        release()
        let now = ContinuousClock.now
        guard let block else {
            // Gradual recovery: double the rate after each quiet minute, up to the configured one.
            if factor < 1, now - (lastBlockAt ?? now) >= Self.recoveryStep, now - lastRaise >= Self.recoveryStep {
                factor = min(1, factor * 2)
                lastRaise = now
            }
            return
        }
        blocks += 1
        lastBlockAt = now
        lastRaise = now
        factor = max(Self.minimumFactor, factor / 4)
        let pause: Duration
        switch block {
        case .tooManyRequests(let retryAfter?):
            pause = retryAfter
            lastBlock = "429, retry after \(retryAfter)"
        case .tooManyRequests(nil):
            pause = .seconds(30)
            lastBlock = "429"
        case .challengePage:
            pause = .seconds(60)
            lastBlock = "challenge page"
        case .emptyBody:
            pause = .seconds(30)
            lastBlock = "empty answers"
        case .forbidden:
            pause = .seconds(60)
            lastBlock = "403"
        }
        pausedUntil = max(pausedUntil, now + pause)
        nextSlot = max(nextSlot, pausedUntil)
    }

    private func release() {
        inFlight -= 1
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
