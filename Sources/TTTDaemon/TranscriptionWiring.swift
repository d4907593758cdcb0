import Foundation
import Logging
import TTTConfig
import TTTStore
import TTTTikTok
import TTTTranscription

extension PipelineSupervisor.Settings {
    public init(_ configuration: TTTConfiguration) {
        let language = configuration.transcription.language.trimmingCharacters(in: .whitespaces)
        self.init(enabled: configuration.transcription.enabled, maxPipelines: configuration.transcription.maxPipelines,
                  window: configuration.transcription.window, model: configuration.transcription.model,
                  language: language.isEmpty || language == "auto" ? nil : language)
    }
}

/// Builds transcription from the configuration: the ASR client, ffmpeg, and the supervisor.
public enum TranscriptionWiring {
    public struct Parts: Sendable {
        public var supervisor: PipelineSupervisor
        public var transcriber: OpenAITranscriber
    }

    public static func make(configuration: TTTConfiguration, store: Store, tiktok: any TikTokClient, logger: Logger) -> Parts {
        let transcription = configuration.transcription
        let key = configuration.secrets.transcriptionAPIKey
        if key == nil, let host = URL(string: transcription.baseURL)?.host, !isLocal(host) {
            logger.error("transcription.base_url is \(host) but no transcription_api_key secret is set: its requests will be refused")
        }
        let transcriber = OpenAITranscriber(baseURL: transcription.baseURL, apiKey: key, logger: Logger(label: "tttd.asr"))
        let ffmpeg = ProcessSpawner.locate(ProcessInfo.processInfo.environment["TTTD_FFMPEG"] ?? "ffmpeg")
        if transcription.enabled && ffmpeg == nil {
            logger.error("ffmpeg was not found in PATH: lives will not be transcribed (apt-get install ffmpeg)")
        }
        let capture = ffmpeg.map {
            FFmpegCapture(spawner: ProcessSpawner(), executable: $0, logger: Logger(label: "tttd.ffmpeg"))
        }
        let supervisor = PipelineSupervisor(
            node: DetectionWiring.nodeID(socket: configuration.control.socket),
            settings: .init(configuration),
            dependencies: .init(store: store, transcriber: transcriber, locator: TikTokStreamLocator(client: tiktok),
                                capture: capture, spillDirectory: spillDirectory()),
            logger: Logger(label: "tttd.pipelines"))
        return Parts(supervisor: supervisor, transcriber: transcriber)
    }

    /// systemd's StateDirectory= when tttd runs as a service, else a private directory in /tmp.
    static func spillDirectory() -> URL {
        if let state = ProcessInfo.processInfo.environment["STATE_DIRECTORY"]?.split(separator: ":").first {
            return URL(fileURLWithPath: String(state)).appendingPathComponent("backlog")
        }
        return FileManager.default.temporaryDirectory.appendingPathComponent("tttd-\(getuid())-backlog")
    }

    static func isLocal(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.") || host.hasSuffix(".local")
    }
}
