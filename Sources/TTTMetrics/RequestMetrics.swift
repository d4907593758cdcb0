import Metrics

/// The duration and the failures by kind of the requests to one endpoint (the ASR, the LLM), made once.
public struct RequestMetrics: Sendable {
    private let duration: Timer
    private let failures: [RequestFailure: Counter]

    public init(duration: MetricDescription, failures: MetricDescription, kinds: [RequestFailure]) {
        self.duration = Timer(label: duration.name)
        self.failures = Dictionary(uniqueKeysWithValues: kinds.map {
            ($0, Counter(label: failures.name, dimensions: [("kind", $0.rawValue)]))
        })
    }

    public func requested(since start: ContinuousClock.Instant) {
        duration.record(duration: ContinuousClock.now - start)
    }

    public func failed(_ kind: RequestFailure) {
        failures[kind]?.increment()
    }
}

/// Why a request to the ASR or the LLM failed, in the few words its metric counts by.
public enum RequestFailure: String, Sendable, CaseIterable {
    case timeout
    case connection
    case rateLimited = "rate_limited"
    /// 401, 403, 404 or a redirect: the key, the URL or the model needs an admin.
    case configuration
    /// 5xx, 408, 409, 425.
    case server
    /// A 2xx whose body is not the expected JSON.
    case badAnswer = "bad_answer"
    /// Another 4xx: the server refused this request.
    case rejected
    /// The LLM's reply is not a valid verdict.
    case invalidReply = "invalid_reply"

    /// The kind of a failed answer with this HTTP status.
    public init(status: Int) {
        switch status {
        case 200..<300: self = .badAnswer
        case 429: self = .rateLimited
        case 401, 403, 404, 300..<400: self = .configuration
        case 408, 409, 425: self = .server
        case 400..<500: self = .rejected
        default: self = .server
        }
    }
}
