/// One metric tttd exports: its Prometheus name, its `# HELP` text and, for a duration histogram,
/// its buckets. The modules create metrics through swift-metrics under these names; the daemon's
/// endpoint exports these and nothing else (docs/operations.md lists them with their labels).
public struct MetricDescription: Sendable {
    public let name: String
    public let help: String
    public let buckets: [Duration]

    init(_ name: String, _ help: String, buckets: [Double] = []) {
        self.name = name
        self.help = help
        self.buckets = buckets.map { .milliseconds(Int64(($0 * 1000).rounded())) }
    }
}

public enum TTTMetric {
    // Detection
    public static let checks = MetricDescription("tttd_checks_total",
        "Account look-ups on TikTok by egress and result (live, offline, not_found, unknown: an error, a block or an unreadable answer).")
    public static let egressBlocks = MetricDescription("tttd_egress_blocks_total",
        "Block signals from TikTok by egress and signal (too_many_requests, challenge_page, empty_body, forbidden); each one pauses the egress and cuts its rate.")
    public static let egressRate = MetricDescription("tttd_egress_rate_ratio",
        "The request rate of the egress as a fraction of tiktok.requests_per_second: 1, less while it recovers from a block.")
    public static let detectionLatency = MetricDescription("tttd_detection_latency_seconds",
        "From the start of a live as TikTok reports it (the room's start time, in whole seconds) to live_started in tttd; lives whose answer has no start time are left out, and a live found after tttd was down counts the downtime.",
        buckets: [1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600])
    public static let lives = MetricDescription("tttd_lives_open",
        "Lives open now on all nodes (refreshed every 5 s from the database).")
    public static let accounts = MetricDescription("tttd_accounts_watched",
        "Accounts watched (refreshed every 5 s from the database).")

    // Transcription
    public static let pipelines = MetricDescription("tttd_pipelines",
        "Pipelines running on this node by state (starting, capturing, reconnecting).")
    public static let pipelineFailures = MetricDescription("tttd_pipeline_failures_total",
        "Pipelines of this node that ended failed (no audio for transcription.give_up_after).")
    public static let asrDuration = MetricDescription("tttd_asr_request_duration_seconds",
        "ASR requests (POST /audio/transcriptions), from sending to the whole answer, failed ones included.",
        buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60])
    public static let asrErrors = MetricDescription("tttd_asr_errors_total",
        "Failed ASR requests by kind (timeout, connection, rate_limited, configuration, server, bad_answer, rejected).")
    public static let asrConcurrency = MetricDescription("tttd_asr_concurrency_limit",
        "ASR requests this node sends at once at most: transcription.max_pipelines, fewer while the ASR cannot keep up (halved on a timeout, 429 or 503).")
    public static let windows = MetricDescription("tttd_transcription_windows_total",
        "Windows of the pipelines of this node by outcome (transcribed, silent, filtered: judged a hallucination, skipped: not transcribed, with a reason).")
    public static let transcriptionBacklog = MetricDescription("tttd_transcription_backlog_windows",
        "Windows cut on this node and waiting for the ASR and the database, all pipelines together.")

    // Analysis and alerts
    public static let llmDuration = MetricDescription("tttd_llm_request_duration_seconds",
        "LLM requests (POST /chat/completions), from sending to the whole answer, failed ones included.",
        buckets: [0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60])
    public static let llmErrors = MetricDescription("tttd_llm_errors_total",
        "Failed LLM requests by kind (timeout, connection, rate_limited, configuration, server, bad_answer, rejected, invalid_reply: a reply that is not a valid verdict).")
    public static let analyses = MetricDescription("tttd_analyses_total",
        "Windows judged by this node by outcome (ok, cached: a verdict reused for the same text, failed: the replies never validated).")
    public static let analysisBacklog = MetricDescription("tttd_analysis_backlog_windows",
        "Windows waiting for the analyzer on all nodes (refreshed every 5 s from the database).")
    public static let alerts = MetricDescription("tttd_alerts_total",
        "Alerts raised by this node (those held back by alerts.cooldown are not counted).")
    public static let deliveries = MetricDescription("tttd_deliveries_total",
        "Delivery attempts by channel and outcome (sent, retried: failed and tried again later, failed: given up).")
    public static let deliveriesPending = MetricDescription("tttd_deliveries_pending",
        "Deliveries waiting to be sent or retried, all channels and nodes (refreshed every 5 s from the database).")

    public static let all: [MetricDescription] = [
        checks, egressBlocks, egressRate, detectionLatency, lives, accounts,
        pipelines, pipelineFailures, asrDuration, asrErrors, asrConcurrency, windows, transcriptionBacklog,
        llmDuration, llmErrors, analyses, analysisBacklog, alerts, deliveries, deliveriesPending,
    ]
}
