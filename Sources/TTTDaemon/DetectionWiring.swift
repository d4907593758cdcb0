import Foundation
import Logging
import TTTConfig
import TTTDetection
import TTTDomain
import TTTStore
import TTTTikTok

extension DetectionService.Settings {
    public init(_ configuration: TTTConfiguration) {
        self.init(interval: configuration.detection.interval,
                  offlineConfirmations: configuration.detection.offlineConfirmations,
                  requestsPerSecond: configuration.tiktok.requestsPerSecond,
                  concurrency: configuration.tiktok.concurrency,
                  aliveRecheck: configuration.detection.liveRecheck,
                  lease: configuration.detection.lease)
    }
}

/// Builds detection from the configuration: one egress for the direct connection and one per proxy.
public enum DetectionWiring {
    public static func make(configuration: TTTConfiguration, store: Store, logger: Logger) -> (service: DetectionService, clients: [HTTPTikTokClient]) {
        let endpoints = HTTPTikTokClient.Endpoints(web: configuration.tiktok.webURL, webcast: configuration.tiktok.webcastURL)
        let session = configuration.secrets.tiktokSession
        var clients = [HTTPTikTokClient(endpoints: endpoints, proxy: nil, session: session)]
        var egresses = [DetectionService.Egress(name: "direct", client: clients[0])]
        if clients[0].sessionRefused {
            logger.error("the tiktok_session secret holds a control character (a line break inside?) and is not sent, so age-restricted lives get no stream URL: write it again on one line and restart tttd")
        }
        for proxy in configuration.tiktok.proxies {
            let client = HTTPTikTokClient(endpoints: endpoints, proxy: proxy, session: session)
            clients.append(client)
            egresses.append(.init(name: redactedProxyName(proxy), client: client))
        }
        let service = DetectionService(
            nodeID: nodeID(socket: configuration.control.socket), store: store, egresses: egresses,
            settings: .init(configuration), logger: logger
        ) { recorded, username in
            let decision = recorded.decision
            if let end = decision.end {
                logger.notice("live ended", metadata: [
                    "account": "\(username)", "live_id": "\(end.id)", "reason": "\(end.reason.rawValue)"])
            }
            if let start = decision.start, let id = recorded.startedLiveID {
                logger.notice("live started", metadata: [
                    "account": "\(username)", "live_id": "\(id)", "room_id": "\(start.roomID)",
                    "title": "\(start.title ?? "")", "restricted": "\(start.restricted)"])
            }
        }
        return (service, clients)
    }

    /// Stable across restarts (so a node frees its own leases at start) and distinct for two
    /// daemons on one host (their sockets differ).
    public static func nodeID(socket: String) -> String {
        let host = ProcessInfo.processInfo.hostName
        let path = URL(fileURLWithPath: socket).standardizedFileURL.path
        return "\(host):\(path)"
    }

    /// A proxy URL may carry credentials: name it by host and port only.
    static func redactedProxyName(_ proxy: String) -> String {
        guard let url = URL(string: proxy), let host = url.host else { return "proxy" }
        return "proxy \(host):\(url.port ?? 8080)"
    }
}
