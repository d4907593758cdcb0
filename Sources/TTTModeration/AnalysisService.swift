import Crypto
import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import TTTAnalysis
import TTTMetrics
import TTTStore

/// The audio of a window with some context, as WAV, while the pipeline still holds it.
public protocol EvidenceSource: Sendable {
    func evidenceClip(liveID: Int64, from start: Double, to end: Double) -> [UInt8]?
}

/// Judges each window with words as it comes, within the analyzer's request budget. The queue is
/// the database (windows in `pending`): an LLM outage only makes it longer, a restart loses
/// nothing, and several nodes share it. A window judged before (same normalised text, prompt and
/// model) reuses that verdict without a request.
public final class AnalysisService: Sendable {
    public struct Settings: Sendable, Equatable {
        public var requestsPerMinute: Double
        public var riskThreshold: Double
        public var alwaysAlert: Set<Verdict.HateType>
        public var cooldown: Duration
        public var weights: ScoreWeights
        public var evidenceDirectory: String

        public init(requestsPerMinute: Double, riskThreshold: Double, alwaysAlert: Set<Verdict.HateType>, cooldown: Duration,
                    weights: ScoreWeights = .init(), evidenceDirectory: String) {
            self.requestsPerMinute = requestsPerMinute
            self.riskThreshold = riskThreshold
            self.alwaysAlert = alwaysAlert
            self.cooldown = cooldown
            self.weights = weights
            self.evidenceDirectory = evidenceDirectory
        }
    }

    /// What `tttctl status` says about analysis.
    public struct Health: Sendable {
        public var state: String
        public var detail: String?
        public var judged: Int
        public var failed: Int
        public var cached: Int
    }

    let node: String
    let store: Store
    let analyzer: any Analyzer
    /// The analyzer's own requests go through it (retries included); the service only updates its budget.
    let pacer: RequestPacer
    let model: String
    let promptSHA256: String
    let evidence: any EvidenceSource
    let logger: Logger
    private let settings: Mutex<Settings>
    private let health = Mutex(Health(state: "ok", detail: nil, judged: 0, failed: 0, cached: 0))
    private let analyses = (ok: AnalysisService.analysisCounter("ok"), cached: AnalysisService.analysisCounter("cached"),
                            failed: AnalysisService.analysisCounter("failed"))
    private let alerts = Counter(label: TTTMetric.alerts.name)
    /// Rung when a window is transcribed (on any node); the queue is looked at on its own only every
    /// `idleLook`, for windows whose lease ran out on a dead node or an announcement that was missed.
    public let wakeup = Wakeup()
    static let idleLook = Duration.seconds(2)

    public init(node: String, store: Store, analyzer: any Analyzer, pacer: RequestPacer, model: String, promptSHA256: String,
                evidence: any EvidenceSource, settings: Settings, logger: Logger) {
        self.pacer = pacer
        self.node = node
        self.store = store
        self.analyzer = analyzer
        self.model = model
        self.promptSHA256 = promptSHA256
        self.evidence = evidence
        self.settings = Mutex(settings)
        self.logger = logger
    }

    public func update(_ new: Settings) {
        settings.withLock { $0 = new }
        pacer.update(perMinute: new.requestsPerMinute)
    }
    public var currentHealth: Health { health.withLock { $0 } }

    public func run() async {
        // Windows this node held when it died wait for no lease to run out.
        while !Task.isShuttingDownGracefully {
            do {
                try await store.releaseAnalysisLeases(node: node)
                break
            } catch {
                if await pause(.seconds(2)) { return }
            }
        }
        var retryDelay = Duration.seconds(2)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let job: Store.AnalysisJob?
            do {
                job = try await store.claimAnalysis(node: node, lease: .seconds(300))
            } catch {
                logger.warning("analysis: database call failed", metadata: ["reason": "\(error)"])
                if await pause(.seconds(2)) { return }
                continue
            }
            guard let job else {
                if await idle() { return }
                continue
            }
            let settings = self.settings.withLock { $0 }
            let hash = Self.textHash(job.text)
            if let cached = try? await store.cachedAnalysis(textHash: hash, promptSHA256: promptSHA256, model: model) {
                var reused = cached.record
                reused.quoteVerified = Quote.isVerified(reused.citation, in: job.text)
                await record(reused, verdict: Self.verdict(of: reused), job: job, settings: settings)
                health.withLock { $0.cached += 1 }
                analyses.cached.increment()
                continue
            }
            do {
                // tttd stopping cancels the request rather than awaiting the model's answer (up to
                // its timeout, times its attempts); the window goes back to the queue.
                let request = AnalysisRequest(transcript: job.text, context: Self.context(for: job))
                let outcome = try await cancelWhenGracefulShutdown { [analyzer] in try await analyzer.analyze(request) }
                retryDelay = .seconds(2)
                let score = RiskScore.score(outcome.verdict, weights: settings.weights)
                let verdict = outcome.verdict
                let record = Store.AnalysisRecord(
                    status: "ok", category: verdict.category.rawValue, virality: verdict.virality.rawValue,
                    hateful: verdict.hateful, target: verdict.target?.rawValue, hateType: verdict.hateType?.rawValue,
                    justification: verdict.justification, citation: verdict.citation,
                    quoteVerified: Quote.isVerified(verdict.citation, in: job.text), manipulation: verdict.manipulation,
                    riskScore: score, model: outcome.model, mode: outcome.mode.rawValue, promptSHA256: outcome.promptSHA256,
                    attempts: outcome.attempts, latencyMilliseconds: outcome.milliseconds, rawReply: outcome.raw,
                    textHash: hash)
                await self.record(record, verdict: verdict, job: job, settings: settings)
                analyses.ok.increment()
                health.withLock {
                    $0.judged += 1
                    $0.state = "ok"
                    $0.detail = nil
                }
            } catch {
                guard let error = error as? AnalysisError, !Task.isShuttingDownGracefully else {
                    try? await store.releaseAnalysis(transcriptID: job.transcriptID, node: node)
                    return
                }
                switch error {
                case let .retriable(reason, retryAfter):
                    let wait = max(retryAfter ?? retryDelay, retryDelay)
                    logger.warning("analysis: the model is unavailable; the window waits", metadata: [
                        "live_id": "\(job.liveID)", "seq": "\(job.seq)", "reason": "\(reason)", "retry_in": "\(wait)"])
                    health.withLock {
                        $0.state = "waiting"
                        $0.detail = reason
                    }
                    try? await store.releaseAnalysis(transcriptID: job.transcriptID, node: node)
                    retryDelay = min(retryDelay * 2, .seconds(300))
                    if await pause(wait) { return }
                case let .invalid(reason, raw, attempts):
                    logger.error("analysis failed: the model's replies never validated", metadata: [
                        "live_id": "\(job.liveID)", "seq": "\(job.seq)", "reason": "\(reason)", "attempts": "\(attempts)"])
                    let record = Store.AnalysisRecord(status: "failed", model: model, promptSHA256: promptSHA256,
                                                      attempts: attempts, rawReply: raw, error: reason, textHash: hash)
                    await self.record(record, verdict: nil, job: job, settings: settings)
                    health.withLock { $0.failed += 1 }
                    analyses.failed.increment()
                }
            }
        }
    }

    /// Records the verdict, with an alert (and its evidence clip) when one is due. A database
    /// outage is waited out: the verdict was paid for.
    private func record(_ record: Store.AnalysisRecord, verdict: Verdict?, job: Store.AnalysisJob, settings: Settings) async {
        var draft: Store.AlertDraft?
        if let verdict, let score = record.riskScore,
           RiskScore.shouldAlert(verdict, score: score, threshold: settings.riskThreshold, alwaysAlert: settings.alwaysAlert) {
            let clip = writeEvidence(job: job, directory: settings.evidenceDirectory)
            draft = Store.AlertDraft(cooldown: settings.cooldown, evidencePath: clip?.path, evidenceSHA256: clip?.sha256)
        }
        var delay = Duration.milliseconds(500)
        while true {
            do {
                let recorded = try await store.recordAnalysis(record, for: job, alert: draft)
                if let alertID = recorded.alertID {
                    alerts.increment()
                    logger.notice("alert", metadata: [
                        "alert_id": "\(alertID)", "live_id": "\(job.liveID)", "account": "\(job.username)",
                        "risk": "\(record.riskScore ?? 0)", "category": "\(record.category ?? "")"])
                } else if recorded.suppressedByCooldown, let path = draft?.evidencePath {
                    try? FileManager.default.removeItem(atPath: path)
                }
                return
            } catch {
                if case .failed = error {
                    logger.error("analysis of live \(job.liveID) window \(job.seq) not recorded: \(error)")
                    return
                }
                logger.warning("analysis: waiting for the database to record a verdict", metadata: ["reason": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(10))
            }
        }
    }

    /// The window's audio with 3 s on each side, as a WAV file readable by tttd's group only.
    private func writeEvidence(job: Store.AnalysisJob, directory: String) -> (path: String, sha256: String)? {
        guard let wav = evidence.evidenceClip(liveID: job.liveID, from: max(0, job.startSeconds - 3), to: job.endSeconds + 3)
        else {
            logger.warning("alert without audio evidence: the window's audio is no longer held",
                           metadata: ["live_id": "\(job.liveID)", "seq": "\(job.seq)"])
            return nil
        }
        let folder = URL(fileURLWithPath: directory).appendingPathComponent("live-\(job.liveID)")
        let file = folder.appendingPathComponent("window-\(job.seq).wav")
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o750])
            try Data(wav).write(to: file)
            try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: file.path)
        } catch {
            logger.error("evidence clip not written", metadata: ["path": "\(file.path)", "error": "\(error)"])
            return nil
        }
        let digest = SHA256.hash(data: wav).map { String(format: "%02x", $0) }.joined()
        return (file.path, digest)
    }

    /// The previous window as context, and a warning when this window's language was not understood.
    static func context(for job: Store.AnalysisJob) -> String? {
        var parts = [String]()
        if job.unreliable {
            parts.append("[Transcription peu fiable : la langue parlée (\(job.language ?? "inconnue")) n'est peut-être pas celle attendue.]")
        }
        if let previous = job.context, !previous.isEmpty { parts.append(previous) }
        return parts.isEmpty ? nil : parts.joined(separator: "\n")
    }

    static func textHash(_ text: String) -> String {
        SHA256.hash(data: Data(Quote.normalized(text).utf8)).map { String(format: "%02x", $0) }.joined()
    }

    private static func analysisCounter(_ outcome: String) -> Counter {
        Counter(label: TTTMetric.analyses.name, dimensions: [("outcome", outcome)])
    }

    /// The verdict a cached record carries (for the alert decision).
    static func verdict(of record: Store.AnalysisRecord) -> Verdict? {
        guard let category = record.category.flatMap(Verdict.Category.init(rawValue:)),
              let virality = record.virality.flatMap(Verdict.Virality.init(rawValue:)) else { return nil }
        return Verdict(category: category, virality: virality, hateful: record.hateful ?? false,
                       target: record.target.flatMap(Verdict.Target.init(rawValue:)),
                       hateType: record.hateType.flatMap(Verdict.HateType.init(rawValue:)),
                       justification: record.justification ?? "", citation: record.citation,
                       manipulation: record.manipulation ?? false)
    }

    /// Sleeps unless tttd stops first; true when it stops.
    private func pause(_ duration: Duration) async -> Bool {
        do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) } } catch { return true }
        return Task.isShuttingDownGracefully
    }

    /// Waits for a window to be announced, or `idleLook`; true when tttd stops.
    private func idle() async -> Bool {
        await cancelWhenGracefulShutdown { await self.wakeup.wait(atMost: Self.idleLook) }
        return Task.isShuttingDownGracefully
    }
}
