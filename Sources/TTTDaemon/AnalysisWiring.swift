import AsyncHTTPClient
import Foundation
import Logging
import NIOPosix
import TTTAlerts
import TTTAnalysis
import TTTConfig
import TTTModeration
import TTTStore
import TTTTranscription

/// Builds analysis and alert delivery from the configuration.
public enum AnalysisWiring {
    public struct Parts: Sendable {
        /// Nil when analysis is off (`unavailable` says why).
        public var analysis: AnalysisService?
        public var unavailable: String?
        public var delivery: DeliveryService
        public var channels: [Store.Channel]
        public var shutdown: @Sendable () async -> Void
    }

    /// Why analysis cannot run with this configuration, or nil when it can (the prompt file is
    /// checked when it loads).
    public static func unavailableReason(_ configuration: TTTConfiguration) -> String? {
        let analysis = configuration.analysis
        guard analysis.enabled else { return "analysis.enabled is false" }
        if configuration.secrets.analysisAPIKey == nil, let host = URL(string: analysis.baseURL)?.host,
           !TranscriptionWiring.isLocal(host) {
            return "no analysis_api_key (or groq_api_key) secret for \(host): transcripts are kept but not judged"
        }
        return nil
    }

    public static func make(configuration: TTTConfiguration, store: Store, evidence: any EvidenceSource, node: String,
                            logger: Logger) -> Parts {
        // Redirects off: a redirected POST would arrive as a GET without its body, yet look delivered.
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: WebhookNotifier.httpClientConfiguration)
        var notifiers = [any Notifier]()
        var channels = [Store.Channel]()
        if let email = configuration.alerts.email {
            let notifier = EmailNotifier(smtpURL: email.smtpURL, from: email.from, to: email.to,
                                         password: configuration.secrets.smtpPassword, logger: Logger(label: "tttd.email"))
            notifiers.append(notifier)
            channels.append(.init(name: notifier.channel, eventTypes: email.events))
        }
        for webhook in configuration.alerts.webhooks {
            let notifier = WebhookNotifier(name: webhook.name, url: webhook.url, secret: webhook.secret, httpClient: httpClient)
            notifiers.append(notifier)
            channels.append(.init(name: notifier.channel, eventTypes: webhook.events))
        }
        let delivery = DeliveryService(node: node, store: store, notifiers: notifiers, logger: Logger(label: "tttd.alerts"))

        var unavailable = unavailableReason(configuration)
        var service: AnalysisService?
        var analyzer: OpenAIChatAnalyzer?
        if unavailable == nil {
            do {
                let prompt = try PromptTemplate.load(path: configuration.analysis.prompt)
                let pacer = RequestPacer(perMinute: configuration.analysis.requestsPerMinute)
                let chat = OpenAIChatAnalyzer(
                    baseURL: configuration.analysis.baseURL, apiKey: configuration.secrets.analysisAPIKey,
                    model: configuration.analysis.model, temperature: configuration.analysis.temperature, prompt: prompt,
                    pacer: pacer, logger: Logger(label: "tttd.analysis"))
                analyzer = chat
                service = AnalysisService(node: node, store: store, analyzer: chat, pacer: pacer, model: configuration.analysis.model,
                                          promptSHA256: prompt.sha256, evidence: evidence, settings: .init(configuration),
                                          logger: Logger(label: "tttd.analysis"))
            } catch {
                unavailable = "\(error)"
            }
        }
        if let unavailable { logger.warning("analysis is off: \(unavailable)") }
        let chat = analyzer
        return Parts(analysis: service, unavailable: unavailable, delivery: delivery, channels: channels) {
            await chat?.shutdown()
            try? await httpClient.shutdown()
        }
    }
}

extension AnalysisService.Settings {
    public init(_ configuration: TTTConfiguration) {
        self.init(requestsPerMinute: configuration.analysis.requestsPerMinute,
                  riskThreshold: configuration.analysis.riskThreshold,
                  alwaysAlert: Set(configuration.analysis.alwaysAlert.compactMap(Verdict.HateType.init(rawValue:))),
                  cooldown: configuration.alerts.cooldown,
                  weights: ScoreWeights(configuration.analysis.scoreWeights),
                  evidenceDirectory: configuration.evidence.directory)
    }
}

extension ScoreWeights {
    init(_ configured: TTTConfiguration.Analysis.ScoreWeights) {
        self.init(base: configured.base, medium: configured.medium, high: configured.high, hateful: configured.hateful)
    }
}

/// Evidence clips come from the audio the running pipelines keep.
extension PipelineSupervisor: EvidenceSource {
    public func evidenceClip(liveID: Int64, from start: Double, to end: Double) -> [UInt8]? {
        // The end may not be captured yet (context after the window): clip what is there.
        clip(liveID: liveID, from: start, to: end).map { WAV.encode($0) }
    }
}
