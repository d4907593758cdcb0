import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import TTTDomain

/// TikTok over HTTP through one egress (the direct connection or one proxy). Browser-like headers,
/// short timeouts, no signatures: the read-only endpoints tttd uses do not need them (TIKTOK.md).
public final class HTTPTikTokClient: TikTokClient {
    public struct Endpoints: Sendable {
        public var web: String
        public var webcast: String

        public init(web: String, webcast: String) {
            self.web = web.hasSuffix("/") ? String(web.dropLast()) : web
            self.webcast = webcast.hasSuffix("/") ? String(webcast.dropLast()) : webcast
        }
    }

    private let http: HTTPClient
    private let endpoints: Endpoints
    private let session: String?
    private let timeout: TimeAmount
    private let logger: Logger
    /// Caps what a misbehaving endpoint can make tttd read into memory.
    private let maxBodyBytes = 4 * 1024 * 1024

    static let userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    static let commonQuery = "aid=1988&app_name=tiktok_web&device_platform=web_pc&channel=tiktok_web"
        + "&browser_language=fr-FR&browser_platform=Win32&browser_name=Mozilla&browser_version=5.0&user_is_login=false"

    /// `proxy` is an `http://host:port` URL, or nil for the direct connection.
    public init(endpoints: Endpoints, proxy: String?, session: String?, timeout: Duration = .seconds(10), logger: Logger) {
        var configuration = HTTPClient.Configuration()
        // No tracer is set up in tttd: without this, each request still builds a no-op span (~5 % of a check's CPU).
        configuration.tracing.tracer = nil
        configuration.timeout = .init(connect: .seconds(5), read: .seconds(Int64(timeout.components.seconds)))
        configuration.redirectConfiguration = .follow(max: 3, allowCycles: false)
        configuration.decompression = .enabled(limit: .ratio(50))
        if let proxy, let url = URL(string: proxy), let host = url.host {
            configuration.proxy = .server(host: host, port: url.port ?? 8080)
        }
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        self.endpoints = endpoints
        self.session = session
        self.timeout = .seconds(Int64(timeout.components.seconds))
        self.logger = logger
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    public func lookUp(_ username: Username) async -> AccountLookup {
        let url = "\(endpoints.web)/api-live/user/room/?\(Self.commonQuery)&uniqueId=\(username.value)&sourceType=54"
        switch await get(url, withSession: false) {
        case .success(let answer): return ResponseParser.accountLookup(answer)
        case .failure(let reason): return .unknown(reason: reason, block: nil)
        }
    }

    public func checkAlive(_ roomIDs: [String]) async -> AliveCheck {
        let url = "\(endpoints.webcast)/webcast/room/check_alive/?\(Self.commonQuery)&room_ids=\(roomIDs.joined(separator: ","))"
        switch await get(url, withSession: false) {
        case .success(let answer): return ResponseParser.aliveCheck(answer)
        case .failure(let reason): return .unknown(reason: reason, block: nil)
        }
    }

    public func roomInfo(_ roomID: String) async -> RoomInfo {
        let url = "\(endpoints.webcast)/webcast/room/info/?\(Self.commonQuery)&room_id=\(roomID)"
        switch await get(url, withSession: true) {
        case .success(let answer): return ResponseParser.roomInfo(answer, roomID: roomID)
        case .failure(let reason): return .unknown(reason: reason, block: nil)
        }
    }

    private enum Outcome { case success(ResponseParser.HTTPAnswer), failure(String) }

    private func get(_ url: String, withSession: Bool) async -> Outcome {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "User-Agent", value: Self.userAgent)
        request.headers.add(name: "Accept", value: "application/json, text/plain, */*")
        request.headers.add(name: "Accept-Language", value: "fr-FR,fr;q=0.9,en;q=0.8")
        request.headers.add(name: "Referer", value: "https://www.tiktok.com/")
        request.headers.add(name: "Origin", value: "https://www.tiktok.com")
        var cookie = "tt-target-idc=useast1a"
        // The session (a secret) goes only where age-restricted rooms need it, and is never logged.
        if withSession, let session, !session.isEmpty { cookie += "; " + Self.sessionCookies(session) }
        request.headers.add(name: "Cookie", value: cookie)
        do {
            let response = try await http.execute(request, timeout: timeout, logger: logger)
            let body = try await response.body.collect(upTo: maxBodyBytes)
            return .success(.init(
                status: Int(response.status.code), contentType: response.headers.first(name: "Content-Type"),
                retryAfter: response.headers.first(name: "Retry-After"), body: Data(body.readableBytesView)))
        } catch let error as HTTPClientError {
            return .failure(Self.describe(error))
        } catch {
            return .failure("\(type(of: error)): \(error)".prefix(200).description)
        }
    }

    /// A bare `sessionid` value becomes the three cookies TikTok expects; a full cookie string passes as is.
    static func sessionCookies(_ session: String) -> String {
        let trimmed = session.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.contains("=") { return trimmed }
        return "sessionid=\(trimmed); sessionid_ss=\(trimmed); sid_tt=\(trimmed)"
    }

    private static func describe(_ error: HTTPClientError) -> String {
        switch error {
        case .readTimeout, .deadlineExceeded: return "timeout"
        case .connectTimeout: return "connect timeout"
        case .remoteConnectionClosed: return "connection closed by TikTok"
        default: return "\(error)".prefix(200).description
        }
    }
}
