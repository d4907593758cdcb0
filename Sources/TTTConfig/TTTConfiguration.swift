/// The daemon's whole configuration, validated: every value here is usable as is.
/// Built by `ConfigLoader.load`; the defaults below are the documented ones (INTERFACES.md).
public struct TTTConfiguration: Sendable, Equatable {
    public var database: Database
    public var control: Control
    public var tiktok: TikTok
    public var detection: Detection
    public var transcription: Transcription
    public var analysis: Analysis
    public var alerts: Alerts
    public var evidence: Evidence
    public var metrics: Metrics
    public var retention: Retention
    public var log: Log
    public var secrets: Secrets

    public static let defaultPath = "/etc/tttd/tttd.yaml"

    public init(database: Database, control: Control = .init(), tiktok: TikTok = .init(),
                detection: Detection = .init(), transcription: Transcription = .init(),
                analysis: Analysis = .init(), alerts: Alerts = .init(), evidence: Evidence = .init(),
                metrics: Metrics = .init(), retention: Retention = .init(), log: Log = .init(),
                secrets: Secrets = .init()) {
        self.database = database
        self.control = control
        self.tiktok = tiktok
        self.detection = detection
        self.transcription = transcription
        self.analysis = analysis
        self.alerts = alerts
        self.evidence = evidence
        self.metrics = metrics
        self.retention = retention
        self.log = log
        self.secrets = secrets
    }

    public struct Database: Sendable, Equatable {
        public var url: DatabaseURL
        public init(url: DatabaseURL) { self.url = url }
    }

    public struct Control: Sendable, Equatable {
        public var socket: String
        public var adminGroup: String
        public var viewerGroup: String
        public init(socket: String = "/run/tttd/control.sock", adminGroup: String = "tttd-admin",
                    viewerGroup: String = "tttd") {
            self.socket = socket
            self.adminGroup = adminGroup
            self.viewerGroup = viewerGroup
        }
    }

    public struct TikTok: Sendable, Equatable {
        public var webURL: String
        public var webcastURL: String
        /// Per egress (direct, or each proxy), all endpoints together.
        public var requestsPerSecond: Double
        public var concurrency: Int
        public var proxies: [String]
        public init(webURL: String = "https://www.tiktok.com", webcastURL: String = "https://webcast.tiktok.com",
                    requestsPerSecond: Double = 0.3, concurrency: Int = 4, proxies: [String] = []) {
            self.webURL = webURL
            self.webcastURL = webcastURL
            self.requestsPerSecond = requestsPerSecond
            self.concurrency = concurrency
            self.proxies = proxies
        }
    }

    public struct Detection: Sendable, Equatable {
        public var interval: Duration
        public var offlineConfirmations: Int
        /// How often open lives are re-checked through batched check_alive requests.
        public var liveRecheck: Duration
        /// How long a node's claim on an account or a live lasts: a dead node's work returns after it.
        public var lease: Duration
        public init(interval: Duration = .seconds(60), offlineConfirmations: Int = 2,
                    liveRecheck: Duration = .seconds(15), lease: Duration = .seconds(60)) {
            self.interval = interval
            self.offlineConfirmations = offlineConfirmations
            self.liveRecheck = liveRecheck
            self.lease = lease
        }
    }

    public struct Transcription: Sendable, Equatable {
        public var enabled: Bool
        public var baseURL: String
        public var model: String
        public var language: String
        public var window: Duration
        public var maxPipelines: Int
        /// A pipeline that captures no audio for this long ends as failed (a `pipeline_failed` notice).
        public var giveUpAfter: Duration
        public init(enabled: Bool = true, baseURL: String = "https://api.groq.com/openai/v1",
                    model: String = "whisper-large-v3-turbo", language: String = "fr",
                    window: Duration = .seconds(15), maxPipelines: Int = 50, giveUpAfter: Duration = .seconds(300)) {
            self.enabled = enabled
            self.baseURL = baseURL
            self.model = model
            self.language = language
            self.window = window
            self.maxPipelines = maxPipelines
            self.giveUpAfter = giveUpAfter
        }
    }

    public struct Analysis: Sendable, Equatable {
        public var enabled: Bool
        public var baseURL: String
        public var model: String
        public var temperature: Double
        public var requestsPerMinute: Double
        /// Path of the prompt template file.
        public var prompt: String
        public var riskThreshold: Double
        /// Hate types (`insult`, `stigmatization`, `dehumanization`, `call_to_violence`) that alert whatever the score.
        public var alwaysAlert: [String]
        public var scoreWeights: ScoreWeights

        /// The risk score's terms (`analysis.score_weights.*`): the seed's formula by default.
        public struct ScoreWeights: Sendable, Equatable {
            public var base: Double
            public var medium: Double
            public var high: Double
            public var hateful: Double

            public init(base: Double = 0.2, medium: Double = 0.3, high: Double = 0.5, hateful: Double = 0.4) {
                self.base = base
                self.medium = medium
                self.high = high
                self.hateful = hateful
            }
        }

        public init(enabled: Bool = true, baseURL: String = "https://api.groq.com/openai/v1",
                    model: String = "openai/gpt-oss-120b", temperature: Double = 0, requestsPerMinute: Double = 30,
                    prompt: String = "/etc/tttd/prompts/moderation.yaml", riskThreshold: Double = 0.7,
                    alwaysAlert: [String] = ["call_to_violence", "dehumanization"], scoreWeights: ScoreWeights = .init()) {
            self.enabled = enabled
            self.baseURL = baseURL
            self.model = model
            self.temperature = temperature
            self.requestsPerMinute = requestsPerMinute
            self.prompt = prompt
            self.riskThreshold = riskThreshold
            self.alwaysAlert = alwaysAlert
            self.scoreWeights = scoreWeights
        }
    }

    public struct Alerts: Sendable, Equatable {
        public var cooldown: Duration
        public var email: Email?
        public var webhooks: [Webhook]
        public init(cooldown: Duration = .seconds(300), email: Email? = nil, webhooks: [Webhook] = []) {
            self.cooldown = cooldown
            self.email = email
            self.webhooks = webhooks
        }
    }

    public struct Email: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
        /// `smtp://` or `smtps://`, with the user; the password comes from `secrets.smtpPassword`.
        public var smtpURL: String
        public var from: String
        public var to: [String]
        /// Event types: `alert`, `live_started`, `live_ended`, `pipeline_failed`.
        public var events: [String]
        public init(smtpURL: String, from: String, to: [String], events: [String] = ["alert"]) {
            self.smtpURL = smtpURL
            self.from = from
            self.to = to
            self.events = events
        }
        public var description: String {
            "Email(smtpURL: \(redactingURLPassword(smtpURL)), from: \(from), to: \(to), events: \(events))"
        }
        public var debugDescription: String { description }
    }

    public struct Webhook: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
        public var name: String
        public var url: String
        /// The signing secret (`whsec_…`), resolved like `secrets.webhookSecrets[name]`.
        public var secret: String?
        public var events: [String]
        public init(name: String, url: String, secret: String? = nil, events: [String] = ["alert"]) {
            self.name = name
            self.url = url
            self.secret = secret
            self.events = events
        }
        /// Never shows the secret, only whether there is one.
        public var description: String {
            "Webhook(name: \(name), url: \(redactingURLPassword(url)), secret: \(secret == nil ? "none" : "set"), events: \(events))"
        }
        public var debugDescription: String { description }
    }

    public struct Evidence: Sendable, Equatable {
        public var directory: String
        public init(directory: String = "/var/lib/tttd/evidence") { self.directory = directory }
    }

    public struct Metrics: Sendable, Equatable {
        /// `HOST:PORT` of the Prometheus endpoint; nil: no endpoint.
        public var listen: String?
        public init(listen: String? = nil) { self.listen = listen }

        /// `listen` split into host and port (`[::1]:9100` gives `::1` and 9100).
        public var listenAddress: (host: String, port: Int)? { listen.flatMap(HostPort.parse) }
    }

    public struct Retention: Sendable, Equatable {
        public var transcripts: RetentionPeriod
        public var analyses: RetentionPeriod
        public var evidence: RetentionPeriod
        public var events: RetentionPeriod
        public init(transcripts: RetentionPeriod = .forever, analyses: RetentionPeriod = .forever,
                    evidence: RetentionPeriod = .forever, events: RetentionPeriod = .forever) {
            self.transcripts = transcripts
            self.analyses = analyses
            self.evidence = evidence
            self.events = events
        }
    }

    public struct Log: Sendable, Equatable {
        /// `trace`, `debug`, `info`, `notice`, `warning`, `error` or `critical` (swift-log's levels).
        public var level: String
        public init(level: String = "info") { self.level = level }
        public static let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    }

    /// Event types a channel may receive.
    public static let eventTypes = ["alert", "live_started", "live_ended", "pipeline_failed"]
    /// Hate types `analysis.always_alert` may list.
    public static let hateTypes = ["insult", "stigmatization", "dehumanization", "call_to_violence"]
}

/// How long stored rows are kept.
public enum RetentionPeriod: Sendable, Equatable, CustomStringConvertible {
    case forever
    case duration(Duration)

    /// `forever` or a duration as written in the file (`90d`).
    public var description: String {
        switch self {
        case .forever: "forever"
        case .duration(let d): DurationParser.format(d)
        }
    }
}

/// `HOST:PORT` as `metrics.listen` takes it; an IPv6 host goes in brackets.
enum HostPort {
    static func parse(_ text: String) -> (host: String, port: Int)? {
        let host: Substring
        let port: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[close...].hasPrefix("]:") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            port = text[text.index(after: colon)...]
            guard !host.contains(":") else { return nil }
        }
        guard !host.isEmpty, !host.contains(where: \.isWhitespace),
              !port.isEmpty, port.allSatisfy({ $0.isASCII && $0.isNumber }),
              let number = Int(port), (1...65_535).contains(number)
        else { return nil }
        return (String(host), number)
    }
}
