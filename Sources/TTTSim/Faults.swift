import Synchronization
import TTTDomain

/// A fault as posted to `POST /_sim/faults`.
public struct FaultSpec: Codable, Sendable {
    public enum Kind: String, Codable, Sendable {
        case httpStatus = "http_status"
        case htmlWAF = "html_waf"
        case empty200 = "empty_200"
        case delay
        case reset
        case dropStream = "drop_stream"
        case notFoundFlap = "not_found_flap"
        case rateWAF = "rate_waf"
        /// room/info answers 4003110 whatever the cookies: TikTok throttling, or an expired session.
        case roomInfoRefused = "room_info_refused"
    }

    public var kind: Kind
    /// http_status: the status to answer (default 403); a 3xx redirects to the request's own URL.
    public var status: Int?
    /// delay: milliseconds before answering (default 1000).
    public var ms: Int?
    /// Chance that the fault applies to one request or stream (default 1).
    public var probability: Double?
    /// Lifetime in seconds; until cleared when absent.
    public var duration_s: Double?
    /// Path prefixes the fault applies to; every TikTok endpoint when absent.
    public var paths: [String]?
    /// rate_waf: requests allowed in the window (default 20). Other kinds: the fault fires at most
    /// this many times, then stops (handy for "fail the next 3 requests").
    public var max: Int?
    /// rate_waf: sliding window in seconds (default 60).
    public var window_s: Double?
    /// rate_waf: how long every counted request is blocked once the window overflows (default 300).
    public var penalty_s: Double?
    /// http_status 429: the Retry-After header in seconds (default 5).
    public var retry_after: Int?

    public init(kind: Kind, status: Int? = nil, ms: Int? = nil, probability: Double? = nil, duration_s: Double? = nil,
                paths: [String]? = nil, max: Int? = nil, window_s: Double? = nil, penalty_s: Double? = nil,
                retry_after: Int? = nil) {
        self.kind = kind
        self.status = status
        self.ms = ms
        self.probability = probability
        self.duration_s = duration_s
        self.paths = paths
        self.max = max
        self.window_s = window_s
        self.penalty_s = penalty_s
        self.retry_after = retry_after
    }

    func validate() throws(SimError) {
        if let probability, !(0...1).contains(probability) { throw .invalid("probability must be between 0 and 1") }
        if let status, !(100...599).contains(status) { throw .invalid("status must be an HTTP status") }
        if let ms, ms < 0 { throw .invalid("ms must not be negative") }
        if let max, max < 0 { throw .invalid("max must not be negative") }
        for value in [duration_s, window_s, penalty_s].compactMap({ $0 }) where value <= 0 {
            throw .invalid("durations must be positive")
        }
    }
}

/// What the fault middleware does to one request.
public enum FaultAction: Equatable, Sendable {
    case none
    case status(Int, retryAfter: Int?)
    case challenge
    case empty
    case reset
    case userNotFound
    case roomInfoRefused
}

public struct FaultDecision: Equatable, Sendable {
    public var delayMs = 0
    public var action = FaultAction.none
}

/// The active faults. Decisions take `now` as a parameter so that tests can move time forward
/// without sleeping.
public final class FaultBoard: Sendable {
    private struct Active {
        let id: Int
        let spec: FaultSpec
        let expiresAt: ContinuousClock.Instant?
        var remaining: Int?
        /// rate_waf: times of the counted requests still inside the window.
        var window: [ContinuousClock.Instant] = []
        var blockedUntil: ContinuousClock.Instant?
    }

    private struct Board {
        var faults: [Active] = []
        var nextId = 1
        var random: SeededRandom
    }

    private let board: Mutex<Board>

    public init(random: SeededRandom) {
        board = Mutex(Board(random: random))
    }

    public func add(_ spec: FaultSpec, now: ContinuousClock.Instant = .now) throws(SimError) -> Int {
        try spec.validate()
        return board.withLock { board in
            let id = board.nextId
            board.nextId += 1
            let expiry = spec.duration_s.map { now + .milliseconds(Int64($0 * 1000)) }
            let remaining = spec.kind == .rateWAF ? nil : spec.max
            board.faults.append(Active(id: id, spec: spec, expiresAt: expiry, remaining: remaining))
            return id
        }
    }

    public func clear() { board.withLock { $0.faults.removeAll() } }

    @discardableResult
    public func remove(id: Int) -> Bool {
        board.withLock { board in
            let before = board.faults.count
            board.faults.removeAll { $0.id == id }
            return board.faults.count != before
        }
    }

    /// The active faults with their ids, for `GET /_sim/faults`.
    public func list(now: ContinuousClock.Instant = .now) -> [(id: Int, spec: FaultSpec, blocking: Bool)] {
        board.withLock { board in
            board.faults.filter { $0.expiresAt.map { $0 > now } ?? true }
                .map { ($0.id, $0.spec, $0.blockedUntil.map { $0 > now } ?? false) }
        }
    }

    /// Decides the fate of one TikTok-endpoint request. Faults are tried in creation order:
    /// delays add up, the first other fault that fires decides the answer.
    public func decide(endpoint: TikTokEndpoint, path: String, now: ContinuousClock.Instant = .now) -> FaultDecision {
        board.withLock { board in
            board.faults.removeAll { $0.expiresAt.map { $0 <= now } ?? false }
            var decision = FaultDecision()
            for index in board.faults.indices {
                let spec = board.faults[index].spec
                if spec.kind == .rateWAF {
                    // Counted even once another fault has decided: TikTok's WAF sees every request.
                    let matches = spec.paths.map { Self.matches(path, $0) } ?? endpoint.countedByWAF
                    if matches, Self.rateWAF(&board.faults[index], spec: spec, now: now), decision.action == .none {
                        decision.action = .challenge
                    }
                    continue
                }
                guard decision.action == .none || spec.kind == .delay,
                      Self.applies(spec.kind, to: endpoint),
                      spec.paths.map({ Self.matches(path, $0) }) ?? true,
                      board.faults[index].remaining.map({ $0 > 0 }) ?? true,
                      Self.draw(spec.probability, &board.random)
                else { continue }
                board.faults[index].remaining? -= 1
                switch spec.kind {
                case .delay: decision.delayMs += spec.ms ?? 1000
                case .httpStatus:
                    let status = spec.status ?? 403
                    decision.action = .status(status, retryAfter: status == 429 ? (spec.retry_after ?? 5) : nil)
                case .htmlWAF: decision.action = .challenge
                case .empty200: decision.action = .empty
                case .reset: decision.action = .reset
                case .notFoundFlap: decision.action = .userNotFound
                case .roomInfoRefused: decision.action = .roomInfoRefused
                case .dropStream, .rateWAF: break
                }
            }
            return decision
        }
    }

    /// Whether a stream should be cut now. Each stream draws once per drop_stream fault (the ids
    /// it has drawn for are kept by the stream), so a probability of 0.5 cuts about half of the
    /// current and new streams, not every stream eventually.
    public func shouldDropStream(drawn: inout Set<Int>, path: String, now: ContinuousClock.Instant = .now) -> Bool {
        board.withLock { board in
            for index in board.faults.indices {
                let fault = board.faults[index]
                guard fault.spec.kind == .dropStream, !drawn.contains(fault.id),
                      fault.expiresAt.map({ $0 > now }) ?? true,
                      fault.spec.paths.map({ Self.matches(path, $0) }) ?? true,
                      fault.remaining.map({ $0 > 0 }) ?? true
                else { continue }
                drawn.insert(fault.id)
                if Self.draw(fault.spec.probability, &board.random) {
                    board.faults[index].remaining? -= 1
                    return true
                }
            }
            return false
        }
    }

    /// Sliding-window WAF: a request arriving while more than `max` counted requests fall in the
    /// last `window_s` starts a `penalty_s` block; blocked requests still count, so a client
    /// that keeps hammering stays blocked, one that backs off is let through after the penalty.
    private static func rateWAF(_ fault: inout Active, spec: FaultSpec, now: ContinuousClock.Instant) -> Bool {
        let window = Duration.milliseconds(Int64((spec.window_s ?? 60) * 1000))
        fault.window.append(now)
        let firstInside = fault.window.firstIndex { $0 > now - window } ?? fault.window.endIndex
        fault.window.removeFirst(firstInside)
        if let until = fault.blockedUntil, until > now { return true }
        if fault.window.count > (spec.max ?? 20) {
            fault.blockedUntil = now + .milliseconds(Int64((spec.penalty_s ?? 300) * 1000))
            return true
        }
        return false
    }

    private static func applies(_ kind: FaultSpec.Kind, to endpoint: TikTokEndpoint) -> Bool {
        switch kind {
        case .notFoundFlap: endpoint == .userRoom
        case .roomInfoRefused: endpoint == .roomInfo
        case .dropStream, .rateWAF: false  // handled apart
        case .httpStatus, .htmlWAF, .empty200, .delay, .reset: true
        }
    }

    private static func matches(_ path: String, _ prefixes: [String]) -> Bool {
        prefixes.contains { path.hasPrefix($0) }
    }

    private static func draw(_ probability: Double?, _ random: inout SeededRandom) -> Bool {
        let p = probability ?? 1
        return p >= 1 || Double.random(in: 0..<1, using: &random) < p
    }
}
