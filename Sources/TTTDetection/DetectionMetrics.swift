import Metrics
import TTTMetrics
import TTTTikTok

/// The check counters of one egress, made once: counting a check is then one atomic add.
struct CheckCounters: Sendable {
    private let live, offline, notFound, unknown: Counter

    init(egress: String) {
        func counter(_ result: String) -> Counter {
            Counter(label: TTTMetric.checks.name, dimensions: [("egress", egress), ("result", result)])
        }
        (live, offline, notFound, unknown) = (counter("live"), counter("offline"), counter("not_found"), counter("unknown"))
    }

    func count(_ lookup: AccountLookup) {
        switch lookup {
        case .live: live.increment()
        case .offline: offline.increment()
        case .notFound: notFound.increment()
        case .unknown: unknown.increment()
        }
    }
}

/// The block signals of one egress and its current slow-down.
struct EgressMetrics: Sendable {
    private let tooManyRequests, challengePage, emptyBody, forbidden, roomInfoRefused: Counter
    let rate: Gauge

    init(egress: String) {
        func counter(_ signal: String) -> Counter {
            Counter(label: TTTMetric.egressBlocks.name, dimensions: [("egress", egress), ("signal", signal)])
        }
        (tooManyRequests, challengePage, emptyBody, forbidden, roomInfoRefused) =
            (counter("too_many_requests"), counter("challenge_page"), counter("empty_body"), counter("forbidden"),
             counter("room_info_refused"))
        rate = Gauge(label: TTTMetric.egressRate.name, dimensions: [("egress", egress)])
        rate.record(1.0)
    }

    func count(_ block: BlockSignal) {
        switch block {
        case .tooManyRequests: tooManyRequests.increment()
        case .challengePage: challengePage.increment()
        case .emptyBody: emptyBody.increment()
        case .forbidden: forbidden.increment()
        case .roomInfoRefused: roomInfoRefused.increment()
        }
    }
}
