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
                  language: language.isEmpty || language == "auto" ? nil : language,
                  analyse: AnalysisWiring.unavailableReason(configuration) == nil,
                  giveUpAfter: configuration.transcription.giveUpAfter)
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
        if transcription.enabled, key == nil, let host = URL(string: transcription.baseURL)?.host, !isLocal(host) {
            logger.error("transcription.base_url is \(host) but no transcription_api_key secret is set: its requests will be refused")
        }
        let transcriber = OpenAITranscriber(baseURL: transcription.baseURL, apiKey: key,
                                            maxConnections: transcription.maxPipelines, logger: Logger(label: "tttd.asr"))
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

    /// systemd's StateDirectory= when tttd runs as a service, else a directory in /tmp; one folder
    /// per tttd process (spilled windows do not outlive it, and two tttd on one host must not share
    /// them). Folders of processes that are gone are removed.
    static func spillDirectory() -> URL {
        let base: URL
        if let state = ProcessInfo.processInfo.environment["STATE_DIRECTORY"]?.split(separator: ":").first {
            base = URL(fileURLWithPath: String(state)).appendingPathComponent("backlog")
        } else {
            base = FileManager.default.temporaryDirectory.appendingPathComponent("tttd-\(getuid())-backlog")
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? [] {
            if let pid = Int32(name), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH {
                try? FileManager.default.removeItem(at: base.appendingPathComponent(name))
            }
        }
        return base.appendingPathComponent("\(getpid())")
    }

    static func isLocal(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.") || host.hasSuffix(".local")
    }
}
