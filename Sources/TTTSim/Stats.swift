import Synchronization

/// Request counters for `/_sim/stats`. `max_rps` uses a sliding one-second window: after each
/// request, the number of requests in the second that ends with it.
public final class RequestStats: Sendable {
    public struct Snapshot: Sendable {
        public let requests: [String: Int]
        public let maxRPS: Int
        public let blocked: Int
    }

    private struct Counters {
        var requests: [String: Int] = [:]
        var recent: [ContinuousClock.Instant] = []
        var head = 0
        var maxRPS = 0
        var blocked = 0
    }

    private let counters = Mutex(Counters())

    public init() {}

    public func record(path: String, now: ContinuousClock.Instant = .now) {
        counters.withLock { c in
            c.requests[path, default: 0] += 1
            c.recent.append(now)
            let start = now - .seconds(1)
            while c.head < c.recent.count, c.recent[c.head] <= start { c.head += 1 }
            c.maxRPS = max(c.maxRPS, c.recent.count - c.head)
            if c.head > 4096, c.head * 2 > c.recent.count {  // drop the consumed prefix now and then
                c.recent.removeFirst(c.head)
                c.head = 0
            }
        }
    }

    /// A request that got a fault's answer instead of the normal one, or a stream that was cut.
    public func recordBlocked() { counters.withLock { $0.blocked += 1 } }

    public func snapshot() -> Snapshot {
        counters.withLock { Snapshot(requests: $0.requests, maxRPS: $0.maxRPS, blocked: $0.blocked) }
    }

    public func reset() { counters.withLock { $0 = Counters() } }
}
