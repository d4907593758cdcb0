import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
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

    /// An endpoint base URL taken apart once, so that a request only appends its path and query.
    private struct Base {
        var origin: Origin
        var path: String

        init(_ text: String) {
            let url = URL(string: text)
            origin = url.flatMap(Origin.init).flatMap { HTTPTikTokClient.isValidHeaderValue($0.authority) ? $0 : nil }
                ?? Origin(tls: true, host: "invalid.", port: 443)
            path = url?.path ?? ""
        }
    }

    private let pool: HTTP1Pool
    private let web: Base
    private let webcast: Base
    private let timeout: TimeAmount
    /// Each kind of request's headers (Host and cookies included), built once: a check copies none.
    private let webHeaders: HeaderBlock
    private let webcastHeaders: HeaderBlock
    /// webcast's with the session, for room/info.
    private let sessionHeaders: HeaderBlock
    /// A session goes with room/info: its refusals are TikTok's, not a restricted room's.
    private let sendsSession: Bool
    /// The session secret was given but cannot be a header value (a control character, a line
    /// break inside): it is not sent. Headers are checked here, once, not on every request.
    public let sessionRefused: Bool
    /// Caps what a misbehaving endpoint can make tttd read into memory.
    static let maxBodyBytes = 4 * 1024 * 1024
    static let maxRedirects = 3

    static let userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
    static let commonQuery = "aid=1988&app_name=tiktok_web&device_platform=web_pc&channel=tiktok_web"
        + "&browser_language=fr-FR&browser_platform=Win32&browser_name=Mozilla&browser_version=5.0&user_is_login=false"

    /// `proxy` is an `http://[user:password@]host:port` URL, or nil for the direct connection;
    /// `tls` is for tests, which trust a throwaway certificate.
    public init(endpoints: Endpoints, proxy: String?, session: String?, timeout: Duration = .seconds(10),
                tls: TLSConfiguration = .makeClientConfiguration()) {
        pool = HTTP1Pool(group: MultiThreadedEventLoopGroup.singleton, proxy: proxy.flatMap(HTTPProxy.init), tls: tls,
                         connectTimeout: .seconds(5), maxBodyBytes: Self.maxBodyBytes)
        web = Base(endpoints.web)
        webcast = Base(endpoints.webcast)
        self.timeout = TimeAmount(timeout)
        let common: HTTPHeaders = [
            "User-Agent": Self.userAgent,
            "Accept": "application/json, text/plain, */*",
            "Accept-Language": "fr-FR,fr;q=0.9,en;q=0.8",
            "Accept-Encoding": "gzip, deflate",
            "Referer": "https://www.tiktok.com/",
            "Origin": "https://www.tiktok.com",
            "Connection": "keep-alive",
        ]
        let cookie = "tt-target-idc=useast1a"
        // The session (a secret) goes only where age-restricted rooms need it, and is never logged.
        let sessionCookie = session.flatMap { $0.isEmpty ? nil : Self.sessionCookies($0) }
        let usableSession = sessionCookie.flatMap { Self.isValidHeaderValue($0) ? $0 : nil }
        sessionRefused = sessionCookie != nil && usableSession == nil
        sendsSession = usableSession != nil
        webHeaders = Self.headers(common, host: web.origin.authority, cookie: cookie)
        webcastHeaders = Self.headers(common, host: webcast.origin.authority, cookie: cookie)
        sessionHeaders = Self.headers(common, host: webcast.origin.authority,
                                      cookie: usableSession.map { cookie + "; " + $0 } ?? cookie)
    }

    private static func headers(_ common: HTTPHeaders, host: String, cookie: String) -> HeaderBlock {
        var headers: HTTPHeaders = ["Host": host]
        headers.add(contentsOf: common)
        headers.add(name: "Cookie", value: cookie)
        return HeaderBlock(headers)
    }

    /// What a header value may hold (RFC 9110, 5.5): no control character but the tab. The request
    /// encoder writes headers as given, so every value is checked here before it becomes one.
    static func isValidHeaderValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 == 0x09 || ($0 >= 0x20 && $0 != 0x7F) }
    }

    public func shutdown() async {
        await pool.shutdown()
    }

    public func lookUp(_ username: Username, followUps: (any FollowUpPacing)?) async -> AccountLookup {
        let target = "\(web.path)/api-live/user/room/?\(Self.commonQuery)&uniqueId=\(username.value)&sourceType=54"
        switch await get(web.origin, target, headers: webHeaders, followUps: followUps) {
        case .success(let answer): return ResponseParser.accountLookup(answer)
        case .failure(let reason): return .unknown(reason: reason, block: nil)
        }
    }

    public func checkAlive(_ roomIDs: [String], followUps: (any FollowUpPacing)?) async -> AliveCheck {
        let target = "\(webcast.path)/webcast/room/check_alive/?\(Self.commonQuery)&room_ids=\(roomIDs.joined(separator: ","))"
        switch await get(webcast.origin, target, headers: webcastHeaders, followUps: followUps) {
        case .success(let answer): return ResponseParser.aliveCheck(answer)
        case .failure(let reason): return .unknown(reason: reason, block: nil)
        }
    }

    public func roomInfo(_ roomID: String, followUps: (any FollowUpPacing)?) async -> RoomInfo {
        let target = "\(webcast.path)/webcast/room/info/?\(Self.commonQuery)&room_id=\(roomID)"
        switch await get(webcast.origin, target, headers: sessionHeaders, followUps: followUps) {
        case .success(let answer): return ResponseParser.roomInfo(answer, roomID: roomID, sessionSent: sendsSession)
        case .failure(let reason): return .unknown(reason: reason, block: nil)
        }
    }

    private enum Outcome { case success(ResponseParser.HTTPAnswer), failure(String) }

    private func get(_ origin: Origin, _ target: String, headers: HeaderBlock, followUps: (any FollowUpPacing)?) async -> Outcome {
        var origin = origin
        var target = target
        var headers = headers
        let first = origin
        var redirects = 0
        while true {
            let answer: ResponseCollector.Answer
            do {
                answer = try await pool.get(origin, target: target, headers: headers, timeout: timeout, followUps: followUps)
            } catch {
                return .failure(ResponseCollector.classify(error).description)
            }
            let status = answer.head.code
            if [301, 302, 303, 307, 308].contains(status), redirects < Self.maxRedirects,
               let location = answer.head.location,
               let next = Self.resolve(location, from: origin, target: target) {
                do { try await followUps?.nextStart() } catch { return .failure(HTTPFailure.cancelled.description) }
                redirects += 1
                origin = next.origin
                target = next.target
                var fields = headers.fields
                fields.replaceOrAdd(name: "Host", value: origin.authority)
                // Cookies (the session among them) stay with the origin they were meant for: not
                // another host, port, or plain HTTP where anyone on the way reads them.
                if origin != first { fields.remove(name: "Cookie") }
                headers = HeaderBlock(fields)
                continue
            }
            return .success(.init(
                status: status, contentType: answer.head.contentType, retryAfter: answer.head.retryAfter,
                body: answer.body.withUnsafeReadableBytes { Data($0) }))
        }
    }

    /// Where a `Location` points, absolute or relative to the request it answered; nil if not http(s).
    static func resolve(_ location: String, from origin: Origin, target: String) -> (origin: Origin, target: String)? {
        let base = URL(string: "\(origin.tls ? "https" : "http")://\(origin.authority)\(target)")
        // The Host header is not checked on the way out: a Location must not put a line break in it.
        guard let url = URL(string: location, relativeTo: base)?.absoluteURL, let next = Origin(url),
              isValidHeaderValue(next.authority) else { return nil }
        var path = url.path(percentEncoded: true)
        if path.isEmpty { path = "/" }
        if let query = url.query(percentEncoded: true) { path += "?" + query }
        return (next, path)
    }

    /// A bare `sessionid` value becomes the three cookies TikTok expects; a full cookie string passes as is.
    static func sessionCookies(_ session: String) -> String {
        let trimmed = session.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.contains("=") { return trimmed }
        return "sessionid=\(trimmed); sessionid_ss=\(trimmed); sid_tt=\(trimmed)"
    }
}
