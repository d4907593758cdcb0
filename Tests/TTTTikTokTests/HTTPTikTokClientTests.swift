import Foundation
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization
import TTTDomain
import Testing
@testable import TTTTikTok

/// The HTTP client against real sockets: in-process origin servers and proxies on 127.0.0.1 (TestServers.swift).
@Suite("HTTP TikTok client", .timeLimit(.minutes(1)))
struct HTTPTikTokClientTests {
    static let roomID = "7684008970436823815"
    static let liveJSON = #"{"data":{"user":{"uniqueId":"alice","roomId":"7684008970436823815","status":2},"liveRoom":{"status":2,"title":"Bonsoir"}},"extra":{},"message":"","statusCode":0}"#
    static let roomInfoJSON = #"{"data":{"status":2,"title":"Bonsoir","user_count":12,"id_str":"7684008970436823815"},"status_code":0}"#
    static let live = AccountLookup.live(LiveRoom(roomID: roomID, title: "Bonsoir", viewers: nil, startedAt: nil,
                                                  streams: StreamURLs(audioOnly: nil, flv: [])))
    static let alice = Username(trusted: "alice")

    /// An origin answering `live` to api-live/user/room and to room/info.
    static let liveOrigin: TestHTTPServer.Handler = { request in
        if request.path.hasSuffix("/webcast/room/info/") { return .answer(Reply(json: roomInfoJSON)) }
        return .answer(Reply(json: liveJSON))
    }

    /// The default timeout is long: the whole suite at once can stall a request for seconds on a
    /// loaded machine. Tests of timeouts give their own.
    func client(_ base: String, proxy: String? = nil, session: String? = nil, timeout: Duration = .seconds(15),
                tls: TLSConfiguration = .makeClientConfiguration()) -> HTTPTikTokClient {
        HTTPTikTokClient(endpoints: .init(web: base, webcast: base), proxy: proxy, session: session, timeout: timeout, tls: tls)
    }

    func reason(_ lookup: AccountLookup) -> String? {
        if case .unknown(let reason, _) = lookup { return reason }
        return nil
    }

    // MARK: 1. Plain http

    @Test("plain http: live with its room id, browser-like headers, the session only on room/info")
    func plainHTTP() async throws {
        let server = try await TestHTTPServer.start(handler: Self.liveOrigin)
        let anonymous = client(server.baseURL)
        #expect(await anonymous.lookUp(Self.alice) == Self.live)
        guard case .live(let room) = await anonymous.roomInfo(Self.roomID) else {
            Issue.record("room/info was not live")
            return
        }
        #expect(room.roomID == Self.roomID && room.viewers == 12)

        let withSession = client(server.baseURL + "/", session: "s3cr3t")
        #expect(await withSession.lookUp(Self.alice) == Self.live)
        guard case .live = await withSession.roomInfo(Self.roomID) else {
            Issue.record("room/info with a session was not live")
            return
        }
        let withFullCookie = client(server.baseURL, session: "sessionid=abc; sid_guard=def")
        _ = await withFullCookie.roomInfo(Self.roomID)

        let requests = server.requests
        try #require(requests.count == 5)
        let lookUp = requests[0]
        #expect(lookUp.method == .GET)
        #expect(lookUp.path == "/api-live/user/room/")
        #expect(lookUp.uri.hasPrefix("/api-live/user/room/?"))
        #expect(lookUp.query["uniqueId"] == "alice")
        #expect(lookUp.query["aid"] == "1988")
        #expect(lookUp.headers["Host"] == ["127.0.0.1:\(server.port)"])
        #expect(lookUp.headers.first(name: "User-Agent") == HTTPTikTokClient.userAgent)
        #expect(lookUp.headers.first(name: "User-Agent")?.hasPrefix("Mozilla/5.0") == true)
        #expect(lookUp.headers.first(name: "Accept-Language")?.isEmpty == false)
        #expect(lookUp.headers.first(name: "Referer") == "https://www.tiktok.com/")
        #expect(lookUp.headers["Cookie"] == ["tt-target-idc=useast1a"])

        #expect(requests[1].path == "/webcast/room/info/")
        #expect(requests[1].query["room_id"] == Self.roomID)
        #expect(requests[1].headers["Cookie"] == ["tt-target-idc=useast1a"], "no session configured: no session cookie")

        // With a session: api-live/user/room never carries it, room/info does.
        #expect(requests[2].path == "/api-live/user/room/", "a trailing / on the endpoint is not doubled")
        #expect(requests[2].headers["Cookie"] == ["tt-target-idc=useast1a"])
        #expect(requests[3].path == "/webcast/room/info/")
        #expect(requests[3].headers["Cookie"] == ["tt-target-idc=useast1a; sessionid=s3cr3t; sessionid_ss=s3cr3t; sid_tt=s3cr3t"])
        #expect(requests[4].headers["Cookie"] == ["tt-target-idc=useast1a; sessionid=abc; sid_guard=def"])

        for client in [anonymous, withSession, withFullCookie] { await client.shutdown() }
        await server.stop()
    }

    @Test("answers are parsed: offline, not found, 429 with its Retry-After")
    func parsedAnswers() async throws {
        let server = try await TestHTTPServer.start { request in
            switch request.query["uniqueId"] {
            case "bob": .answer(Reply(json: #"{"data":{"user":{"roomId":"7684008970436823816","status":4},"liveRoom":{"status":4}},"statusCode":0}"#))
            case "carol": .answer(Reply(json: #"{"data":null,"message":"user_not_found","statusCode":19881007}"#))
            default: .answer(Reply(status: .tooManyRequests, headers: ["Retry-After": "7"], json: "{}"))
            }
        }
        let client = client(server.baseURL)
        #expect(await client.lookUp(Username(trusted: "bob")) == .offline(lastRoomID: "7684008970436823816"))
        #expect(await client.lookUp(Username(trusted: "carol")) == .notFound)
        #expect(await client.lookUp(Username(trusted: "dave")) == .unknown(reason: "HTTP 429", block: .tooManyRequests(retryAfter: .seconds(7))))
        await client.shutdown()
        await server.stop()
    }

    // MARK: 2. Keep-alive

    @Test("keep-alive: 20 sequential look-ups on one connection")
    func keepAlive() async throws {
        let server = try await TestHTTPServer.start(handler: Self.liveOrigin)
        let client = client(server.baseURL)
        for _ in 0..<20 {
            #expect(await client.lookUp(Self.alice) == Self.live)
        }
        #expect(server.connectionsAccepted.value == 1)
        #expect(server.requests.count == 20)
        #expect(server.requests.map(\.connection) == Array(repeating: 1, count: 20))
        #expect(server.requests.map(\.indexOnConnection) == Array(1...20))
        await client.shutdown()
        await server.stop()
    }

    // MARK: 3. Connections the server closes

    @Test("a kept-alive connection the server dropped after its answer: the next request still succeeds")
    func serverDropsIdleConnection() async throws {
        let server = try await TestHTTPServer.start { _ in .answerThenClose(Reply(json: Self.liveJSON)) }
        let client = client(server.baseURL)
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(await server.connectionsClosed.wait(atLeast: 1))
        let third = await client.lookUp(Self.alice)
        #expect(third == Self.live, "\(third)")
        #expect(server.connectionsAccepted.value >= 3)
        #expect(server.requests.allSatisfy { $0.indexOnConnection == 1 }, "every answered request was the first on a new connection")
        await client.shutdown()
        await server.stop()
    }

    @Test("the test closes the server side of the kept-alive connection between requests: the next request succeeds")
    func serverClosedBetweenRequests() async throws {
        let server = try await TestHTTPServer.start(handler: Self.liveOrigin)
        let client = client(server.baseURL)
        #expect(await client.lookUp(Self.alice) == Self.live)
        await server.closeConnections()
        #expect(await server.connectionsClosed.wait(atLeast: 1))
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(server.connectionsAccepted.value == 2)
        #expect(server.requests.map(\.connection) == [1, 2])
        await client.shutdown()
        await server.stop()
    }

    @Test("a reused connection closed when the request arrives: retried once on a fresh connection")
    func retryOnReusedConnection() async throws {
        let server = try await TestHTTPServer.start { request in
            request.connection == 1 && request.indexOnConnection == 2 ? .close : .answer(Reply(json: Self.liveJSON))
        }
        let client = client(server.baseURL)
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(server.requests.map(\.connection) == [1, 1, 2])
        await client.shutdown()
        await server.stop()
    }

    @Test("the retry on a fresh connection waits for the egress's next start: the request it repeats may have reached the server")
    func retryIsPaced() async throws {
        let server = try await TestHTTPServer.start { request in
            request.connection == 1 && request.indexOnConnection == 2 ? .close : .answer(Reply(json: Self.liveJSON))
        }
        let client = client(server.baseURL)
        let pacing = CountingPacing()
        #expect(await client.lookUp(Self.alice, followUps: pacing) == Self.live)
        #expect(pacing.starts == 0)
        #expect(await client.lookUp(Self.alice, followUps: pacing) == Self.live)
        #expect(pacing.starts == 1 && server.requests.map(\.connection) == [1, 1, 2])
        await client.shutdown()
        await server.stop()
    }

    @Test("a fresh connection closed before the answer: not retried, unknown")
    func noRetryOnFreshConnection() async throws {
        let server = try await TestHTTPServer.start { _ in .close }
        let client = client(server.baseURL)
        let result = await client.lookUp(Self.alice)
        #expect(reason(result) == "connection closed by TikTok")
        #expect(server.requests.count == 1)
        await client.shutdown()
        await server.stop()
    }

    @Test("Connection: close is honoured: the next request goes on a new connection")
    func connectionClose() async throws {
        // The server says close but leaves the connection open: only the client can make the difference.
        let server = try await TestHTTPServer.start { _ in
            .answer(Reply(headers: ["Content-Type": "application/json", "Connection": "close"], json: Self.liveJSON))
        }
        let client = client(server.baseURL)
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(server.requests.map(\.connection) == [1, 2])
        #expect(await server.connectionsClosed.wait(atLeast: 2), "the client closed both connections")
        await client.shutdown()
        await server.stop()
    }

    // MARK: 4. Timeouts and refusals

    @Test("a server that never answers: unknown \"timeout\" within the client's timeout")
    func timeout() async throws {
        let server = try await TestHTTPServer.start { _ in .ignore }
        let client = client(server.baseURL, timeout: .milliseconds(300))
        let clock = ContinuousClock()
        let start = clock.now
        let result = await client.lookUp(Self.alice)
        let elapsed = clock.now - start
        #expect(reason(result) == "timeout")
        #expect(elapsed >= .milliseconds(250))
        #expect(server.requests.count == 1)
        #expect(await server.connectionsClosed.wait(atLeast: 1), "the timed-out connection is closed, not reused")
        // Well under the default 10 s: the configured timeout applied. Timed by the server, as the
        // client's timer fires on an event loop: the test's own clock also counts any wait for a
        // cooperative thread, seconds when the whole suite runs at once.
        let held = try #require(server.closed(connection: 1)) - (try #require(server.requests.first)).arrived
        #expect(held < .seconds(5))
        await client.shutdown()
        await server.stop()
    }

    @Test("a cancelled request ends at once as unknown \"cancelled\", not at the answer or the timeout; a task cancelled before sends none")
    func cancelled() async throws {
        let server = try await TestHTTPServer.start { _ in .ignore }
        let client = client(server.baseURL, timeout: .seconds(60))
        let lookUp = Task { await client.lookUp(Self.alice) }
        #expect(await server.requestsReceived.wait(atLeast: 1))
        lookUp.cancel()
        #expect(reason(await lookUp.value) == "cancelled")
        #expect(await server.connectionsClosed.wait(atLeast: 1), "its connection is closed, not reused")
        let early = Task { () -> AccountLookup in
            withUnsafeCurrentTask { $0?.cancel() }
            return await client.lookUp(Self.alice)
        }
        #expect(reason(await early.value) == "cancelled")
        #expect(server.requests.count == 1)
        await client.shutdown()
        await server.stop()
    }

    @Test("a kept-alive connection that stops answering times out too, and is not reused")
    func timeoutOnReusedConnection() async throws {
        let served = Locked(0)
        let server = try await TestHTTPServer.start { _ in
            served.withLock { $0 += 1; return $0 } == 1 ? .answer(Reply(json: Self.liveJSON)) : .ignore
        }
        // Long enough for the first exchange on a loaded machine (it opens the connection).
        let client = client(server.baseURL, timeout: .seconds(2))
        #expect(await client.lookUp(Self.alice) == Self.live)
        let clock = ContinuousClock()
        let start = clock.now
        // The first exchange armed the connection's timer; this one's deadline is later, so the
        // timer re-arms for it when it fires.
        let result = await client.lookUp(Self.alice)
        let elapsed = clock.now - start
        #expect(reason(result) == "timeout")
        #expect(elapsed >= .milliseconds(1900))
        #expect(server.requests.map(\.connection) == [1, 1], "the second request went on the kept-alive connection")
        #expect(await server.connectionsClosed.wait(atLeast: 1), "the timed-out connection is closed")
        // Timed by the server, as in the test above.
        let held = try #require(server.closed(connection: 1)) - (try #require(server.requests.last)).arrived
        #expect(held < .seconds(7))
        await client.shutdown()
        await server.stop()
    }

    @Test("a refused connection: unknown, cannot connect, not a timeout")
    func refused() async throws {
        let port = try await closedPort()
        let client = client("http://127.0.0.1:\(port)", timeout: .milliseconds(300))
        let result = await client.lookUp(Self.alice)
        let why = try #require(reason(result))
        #expect(why != "timeout")
        #expect(why.hasPrefix("cannot connect"))
        #expect(why.contains("refused"))
        await client.shutdown()
    }

    // MARK: 5. Bodies

    @Test("an answer larger than 4 MiB: unknown, the reason says the limit")
    func bodyLimit() async throws {
        let big = ByteBuffer(repeating: UInt8(ascii: " "), count: 5 * 1024 * 1024)
        let server = try await TestHTTPServer.start { _ in .answer(Reply(body: big)) }
        let client = client(server.baseURL)
        let why = try #require(reason(await client.lookUp(Self.alice)))
        #expect(why.contains("limit"))
        await client.shutdown()
        await server.stop()
    }

    @Test("an answer just under the limit is read")
    func bodyUnderLimit() async throws {
        let padded = Self.liveJSON + String(repeating: " ", count: HTTPTikTokClient.maxBodyBytes - Self.liveJSON.utf8.count)
        let server = try await TestHTTPServer.start { _ in .answer(Reply(json: padded)) }
        let client = client(server.baseURL)
        #expect(await client.lookUp(Self.alice) == Self.live)
        await client.shutdown()
        await server.stop()
    }

    @Test("a gzip answer is decompressed")
    func gzip() async throws {
        let compressed = try await gzipped(Data(Self.liveJSON.utf8))
        #expect(compressed.starts(with: [0x1F, 0x8B]))
        let server = try await TestHTTPServer.start { _ in
            .answer(Reply(headers: ["Content-Type": "application/json", "Content-Encoding": "gzip"], body: ByteBuffer(bytes: compressed)))
        }
        let client = client(server.baseURL)
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(server.requests.first?.headers.first(name: "Accept-Encoding")?.contains("gzip") == true)
        await client.shutdown()
        await server.stop()
    }

    @Test("a gzip answer that inflates past the limit: unknown")
    func gzipBomb() async throws {
        let compressed = try await gzipped(Data(repeating: UInt8(ascii: " "), count: 6 * 1024 * 1024))
        let server = try await TestHTTPServer.start { _ in
            .answer(Reply(headers: ["Content-Type": "application/json", "Content-Encoding": "gzip"], body: ByteBuffer(bytes: compressed)))
        }
        let client = client(server.baseURL)
        let result = await client.lookUp(Self.alice)
        #expect(reason(result) != nil)
        await client.shutdown()
        await server.stop()
    }

    // MARK: 6. Redirects

    @Test("a 302 to a relative Location is followed on the same connection, cookies kept")
    func relativeRedirect() async throws {
        let server = try await TestHTTPServer.start { request in
            if request.path == "/moved/here" { return .answer(Reply(json: Self.liveJSON)) }
            return .answer(Reply(status: .found, headers: ["Location": "/moved/here?x=1"]))
        }
        let client = client(server.baseURL)
        #expect(await client.lookUp(Self.alice) == Self.live)
        let requests = server.requests
        try #require(requests.count == 2)
        #expect(requests[1].uri == "/moved/here?x=1")
        #expect(requests[1].headers["Cookie"] == ["tt-target-idc=useast1a"])
        #expect(requests[1].headers["Host"] == ["127.0.0.1:\(server.port)"])
        #expect(requests.map(\.connection) == [1, 1])
        await client.shutdown()
        await server.stop()
    }


    @Test("a session that cannot be a header value is not sent; the requests still go")
    func sessionWithLineBreak() async throws {
        let server = try await TestHTTPServer.start(handler: Self.liveOrigin)
        let client = client(server.baseURL, session: "s3cr3t\r\nX-Injected: 1")
        #expect(client.sessionRefused)
        guard case .live = await client.roomInfo(Self.roomID) else {
            Issue.record("room/info was not live")
            return
        }
        let request = try #require(server.requests.first)
        #expect(request.headers["Cookie"] == ["tt-target-idc=useast1a"])
        #expect(request.headers["X-Injected"].isEmpty)
        #expect(!self.client(server.baseURL, session: "s3cr3t").sessionRefused)
        await client.shutdown()
        await server.stop()
    }

    @Test("a Location whose host holds a line break is not followed")
    func redirectWithLineBreak() async throws {
        let server = try await TestHTTPServer.start { _ in
            .answer(Reply(status: .found, headers: ["Location": "http://evil%0d%0aX-Injected/x"]))
        }
        let client = client(server.baseURL)
        #expect(reason(await client.lookUp(Self.alice)) == "HTTP 302")
        #expect(server.requests.count == 1)
        #expect(HTTPTikTokClient.resolve("http://a%0d%0ab/", from: Origin(tls: false, host: "127.0.0.1", port: 80), target: "/") == nil)
        await client.shutdown()
        await server.stop()
    }

    @Test("more than 3 redirects: unknown \"HTTP 302\"")
    func tooManyRedirects() async throws {
        let server = try await TestHTTPServer.start { request in
            .answer(Reply(status: .found, headers: ["Location": "/loop/\(request.uri.count)"]))
        }
        let client = client(server.baseURL)
        #expect(reason(await client.lookUp(Self.alice)) == "HTTP 302")
        #expect(server.requests.count == 4, "the request and 3 redirects")
        await client.shutdown()
        await server.stop()
    }

    @Test("each redirect's hop waits for the egress's next start; a stop meanwhile sends no more")
    func redirectsArePaced() async throws {
        let server = try await TestHTTPServer.start { request in
            .answer(Reply(status: .found, headers: ["Location": "/loop/\(request.uri.count)"]))
        }
        let client = client(server.baseURL)
        let pacing = CountingPacing()
        #expect(reason(await client.lookUp(Self.alice, followUps: pacing)) == "HTTP 302")
        #expect(pacing.starts == 3 && server.requests.count == 4, "a start before each of the 3 hops")
        let stopping = CountingPacing(failing: true)
        #expect(reason(await client.lookUp(Self.alice, followUps: stopping)) == "cancelled")
        #expect(stopping.starts == 1 && server.requests.count == 5, "no hop after the pacing gave up")
        await client.shutdown()
        await server.stop()
    }

    // MARK: 7. TLS
    // MARK: 7. TLS

    @Test("https with the trusted throwaway certificate: live; without trusting it: a TLS failure")
    func tls() async throws {
        let certificate = try await TestCertificate.localhost.value
        let server = try await TestHTTPServer.start(tls: try certificate.serverContext(), handler: Self.liveOrigin)
        #expect(server.baseURL.hasPrefix("https://"))

        let trusting = client(server.baseURL, tls: try certificate.trustingClient())
        #expect(await trusting.lookUp(Self.alice) == Self.live)
        #expect(await trusting.lookUp(Self.alice) == Self.live)
        #expect(server.connectionsAccepted.value == 1, "kept alive over TLS too")

        let byName = client("https://localhost:\(server.port)", tls: try certificate.trustingClient())
        #expect(await byName.lookUp(Self.alice) == Self.live)

        let untrusting = client(server.baseURL)
        let why = try #require(reason(await untrusting.lookUp(Self.alice)))
        #expect(why.hasPrefix("TLS"), "\(why)")
        #expect(server.requests.count == 3, "the untrusting client sent nothing")

        for client in [trusting, byName, untrusting] { await client.shutdown() }
        await server.stop()
    }

    // MARK: 8. Proxy, http origin

    @Test("proxy, http origin: an absolute-form request with Proxy-Authorization")
    func proxyHTTPOrigin() async throws {
        let originPort = 8  // never connected to: the proxy answers itself
        let expected = "Basic " + Data("user:p@ss".utf8).base64EncodedString()
        let proxy = try await TestProxy.start(requiredAuthorization: expected) { _ in Reply(json: Self.liveJSON) }
        let client = client("http://127.0.0.1:\(originPort)", proxy: "http://user:p%40ss@127.0.0.1:\(proxy.port)")
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(await client.lookUp(Self.alice) == Self.live)
        let requests = proxy.requests
        try #require(requests.count == 2)
        #expect(requests[0].requestLine.hasPrefix("GET http://127.0.0.1:\(originPort)/api-live/user/room/?"))
        #expect(requests[0].requestLine.hasSuffix(" HTTP/1.1"))
        #expect(requests[0].requestLine.contains("uniqueId=alice"))
        #expect(requests[0].header("Proxy-Authorization") == expected)
        #expect(requests[0].header("Host") == "127.0.0.1:\(originPort)")
        #expect(requests[0].header("Cookie") == "tt-target-idc=useast1a")
        #expect(proxy.connectionsAccepted.value == 1, "the connection to the proxy is kept alive")
        await client.shutdown()
        await proxy.stop()
    }

    // MARK: 9. Proxy, https origin

    @Test("proxy, https origin: a CONNECT tunnel with Proxy-Authorization, TLS end to end")
    func proxyConnect() async throws {
        let certificate = try await TestCertificate.localhost.value
        let origin = try await TestHTTPServer.start(tls: try certificate.serverContext(), handler: Self.liveOrigin)
        let expected = "Basic " + Data("user:p@ss".utf8).base64EncodedString()
        let proxy = try await TestProxy.start(requiredAuthorization: expected)
        // By name: an address origin cannot be verified through a tunnel (tunnelledIPOrigin).
        let client = client("https://localhost:\(origin.port)", proxy: "http://user:p%40ss@127.0.0.1:\(proxy.port)",
                            tls: try certificate.trustingClient())
        #expect(await client.lookUp(Self.alice) == Self.live)
        #expect(await client.lookUp(Self.alice) == Self.live)

        let connects = proxy.requests
        try #require(connects.count == 1, "one tunnel, kept alive")
        #expect(connects[0].requestLine == "CONNECT localhost:\(origin.port) HTTP/1.1")
        #expect(connects[0].header("Proxy-Authorization") == expected)
        #expect(connects[0].header("Cookie") == nil, "the proxy sees no cookie")
        #expect(origin.requests.count == 2)
        #expect(origin.requests.allSatisfy { !$0.headers.contains(name: "Proxy-Authorization") })
        #expect(origin.requests.first?.uri.hasPrefix("/api-live/user/room/?") == true, "origin-form inside the tunnel")
        #expect(origin.requests.first?.headers["Host"] == ["localhost:\(origin.port)"])
        await client.shutdown()
        await proxy.stop()
        await origin.stop()
    }

    @Test("proxy answering 407: unknown, a proxy failure, never the password", arguments: [false, true])
    func proxyAuthenticationRequired(withCredentials: Bool) async throws {
        let proxy = try await TestProxy.start(requiredAuthorization: "Basic bm90OnRoaXM=")
        let credentials = withCredentials ? "user:p%40ss@" : ""
        let client = client("https://localhost:9", proxy: "http://\(credentials)127.0.0.1:\(proxy.port)")
        for _ in 0..<10 {
            let why = try #require(reason(await client.lookUp(Self.alice)))
            #expect(why.hasPrefix("proxy: "), "\(why)")
            #expect(!why.contains("p@ss") && !why.contains("p%40ss") && !why.contains(Data("user:p@ss".utf8).base64EncodedString()))
        }
        #expect(proxy.requests.count == 10)
        #expect(proxy.requests.allSatisfy { $0.method == "CONNECT" })
        #expect(proxy.requests.allSatisfy { $0.header("Proxy-Authorization") == (withCredentials ? "Basic " + Data("user:p@ss".utf8).base64EncodedString() : nil) })
        await client.shutdown()
        await proxy.stop()
    }

    @Test("proxy answering 407: the reason says authentication, every time")
    func proxyAuthenticationReason() async throws {
        let proxy = try await TestProxy.start(requiredAuthorization: "Basic bm90OnRoaXM=")
        let client = client("https://localhost:9", proxy: "http://user:p%40ss@127.0.0.1:\(proxy.port)")
        // Several times: the answer races the client's set-up of the tunnel.
        for _ in 0..<20 {
            let why = try #require(reason(await client.lookUp(Self.alice)))
            #expect(why == "proxy: authentication required (HTTP 407)")
        }
        await client.shutdown()
        await proxy.stop()
    }

    @Test("a proxy that is not listening, http origin: unknown, the reason starts with proxy")
    func proxyNotListening() async throws {
        let port = try await closedPort()
        let client = client("http://127.0.0.1:9", proxy: "http://user:p%40ss@127.0.0.1:\(port)")
        let why = try #require(reason(await client.lookUp(Self.alice)))
        #expect(why.hasPrefix("proxy: cannot connect"), "\(why)")
        #expect(!why.contains("p@ss") && !why.contains("p%40ss"))
        await client.shutdown()
    }

    @Test("a proxy that is not listening, https origin: unknown, the reason starts with proxy")
    func proxyNotListeningTunnel() async throws {
        let port = try await closedPort()
        let client = client("https://localhost:9", proxy: "http://user:p%40ss@127.0.0.1:\(port)")
        let why = try #require(reason(await client.lookUp(Self.alice)))
        #expect(why.hasPrefix("proxy: cannot connect"), "\(why)")
        #expect(!why.contains("p@ss") && !why.contains("p%40ss"))
        await client.shutdown()
    }

    @Test("an IP-literal https origin is verified against its own address (direct connection)")
    func directIPOriginVerification() async throws {
        // The origin on 127.0.0.2 with a certificate for 127.0.0.1 only: refused.
        let certificate = try await TestCertificate.localhost.value
        let origin = try await TestHTTPServer.start(host: "127.0.0.2", tls: try certificate.serverContext(), handler: Self.liveOrigin)
        let client = client("https://127.0.0.2:\(origin.port)", tls: try certificate.trustingClient())
        let why = reason(await client.lookUp(Self.alice))
        #expect(why != nil, "a certificate for 127.0.0.1 accepted for 127.0.0.2")
        #expect(origin.requests.isEmpty)
        await client.shutdown()
        await origin.stop()
    }

    @Test("a refused certificate is reported as TLS, every time")
    func tlsFailureReason() async throws {
        let certificate = try await TestCertificate.localhost.value
        let elsewhere = try await TestHTTPServer.start(host: "127.0.0.2", tls: try certificate.serverContext(), handler: Self.liveOrigin)
        let local = try await TestHTTPServer.start(tls: try certificate.serverContext(), handler: Self.liveOrigin)
        let wrongAddress = client(elsewhere.baseURL.replacingOccurrences(of: "127.0.0.1", with: "127.0.0.2"),
                                  tls: try certificate.trustingClient())
        let untrusting = client(local.baseURL)
        var reasons: [String: Int] = [:]
        for _ in 0..<20 {
            for client in [wrongAddress, untrusting] {
                let why = reason(await client.lookUp(Self.alice)) ?? "live"
                reasons[why.hasPrefix("TLS") ? "TLS: …" : why, default: 0] += 1
            }
        }
        #expect(reasons == ["TLS: …": 40])
        #expect(elsewhere.requests.isEmpty && local.requests.isEmpty)
        await wrongAddress.shutdown()
        await untrusting.shutdown()
        await elsewhere.stop()
        await local.stop()
    }

    @Test("an IP-literal https origin through a proxy is refused: it could only be checked against the proxy's address")
    func tunnelledIPOrigin() async throws {
        // The origin on 127.0.0.2 with a certificate for 127.0.0.1 only; the proxy on 127.0.0.1.
        let certificate = try await TestCertificate.localhost.value
        let origin = try await TestHTTPServer.start(host: "127.0.0.2", tls: try certificate.serverContext(), handler: Self.liveOrigin)
        let proxy = try await TestProxy.start()
        let client = client("https://127.0.0.2:\(origin.port)", proxy: "http://127.0.0.1:\(proxy.port)", tls: try certificate.trustingClient())
        let why = reason(await client.lookUp(Self.alice))
        #expect(why?.hasPrefix("TLS") == true, "a certificate for 127.0.0.1 accepted for 127.0.0.2: \(why ?? "live")")
        await client.shutdown()
        await proxy.stop()
        await origin.stop()
    }

    // MARK: 10. check_alive

    @Test("checkAlive over the pool: matched by room id")
    func checkAlive() async throws {
        let server = try await TestHTTPServer.start { request in
            guard request.path == "/base/webcast/room/check_alive/" else { return .answer(Reply(status: .notFound)) }
            return .answer(Reply(json: #"{"data":[{"alive":false,"room_id":7684008970436823816,"room_id_str":"7684008970436823816"},{"alive":true,"room_id":7684008970436823815,"room_id_str":"7684008970436823815"}],"extra":{},"status_code":0}"#))
        }
        let client = HTTPTikTokClient(endpoints: .init(web: server.baseURL, webcast: server.baseURL + "/base/"), proxy: nil, session: "s3cr3t")
        let result = await client.checkAlive(["7684008970436823815", "7684008970436823816", "1"])
        #expect(result == .answered(["7684008970436823815": true, "7684008970436823816": false]))
        let request = try #require(server.requests.first)
        #expect(request.query["room_ids"] == "7684008970436823815,7684008970436823816,1")
        #expect(request.headers["Cookie"] == ["tt-target-idc=useast1a"], "check_alive carries no session")
        await client.shutdown()
        await server.stop()
    }

    // MARK: 11. resolve

    @Test("resolve: relative and absolute Locations; other schemes are not followed")
    func resolve() {
        let origin = Origin(tls: true, host: "www.tiktok.com", port: 443)
        let target = "/api-live/user/room/?aid=1988&uniqueId=alice"

        let absolutePath = HTTPTikTokClient.resolve("/moved?x=1", from: origin, target: target)
        #expect(absolutePath?.origin == origin)
        #expect(absolutePath?.target == "/moved?x=1")

        let relative = HTTPTikTokClient.resolve("other?y=2", from: origin, target: target)
        #expect(relative?.origin == origin)
        #expect(relative?.target == "/api-live/user/room/other?y=2")

        let parent = HTTPTikTokClient.resolve("../up", from: origin, target: target)
        #expect(parent?.target == "/api-live/user/up")

        let absolute = HTTPTikTokClient.resolve("http://m.tiktok.com:8080/a/b?c=d", from: origin, target: target)
        #expect(absolute?.origin == Origin(tls: false, host: "m.tiktok.com", port: 8080))
        #expect(absolute?.target == "/a/b?c=d")

        let bare = HTTPTikTokClient.resolve("https://www.tiktok.com", from: origin, target: target)
        #expect(bare?.origin == origin)
        #expect(bare?.target == "/")

        let schemeRelative = HTTPTikTokClient.resolve("//webcast.tiktok.com/x", from: origin, target: target)
        #expect(schemeRelative?.origin == Origin(tls: true, host: "webcast.tiktok.com", port: 443))
        #expect(schemeRelative?.target == "/x")

        let encoded = HTTPTikTokClient.resolve("/a%20b?q=%2F", from: origin, target: target)
        #expect(encoded?.target == "/a%20b?q=%2F")

        #expect(HTTPTikTokClient.resolve("ftp://www.tiktok.com/file", from: origin, target: target) == nil)
        #expect(HTTPTikTokClient.resolve("javascript:alert(1)", from: origin, target: target) == nil)
        #expect(HTTPTikTokClient.resolve("mailto:a@b.c", from: origin, target: target) == nil)
    }

    // MARK: shutdown

    @Test("after shutdown: unknown, no hang, kept-alive connections closed")
    func shutdown() async throws {
        let server = try await TestHTTPServer.start(handler: Self.liveOrigin)
        let client = client(server.baseURL)
        #expect(await client.lookUp(Self.alice) == Self.live)
        await client.shutdown()
        #expect(await server.connectionsClosed.wait(atLeast: 1), "the idle connection was closed")
        #expect(reason(await client.lookUp(Self.alice)) == "shutting down")
        #expect(server.requests.count == 1)
        await server.stop()
    }

    @Test("shutdown during an exchange: the request in flight ends, unknown")
    func shutdownInFlight() async throws {
        let server = try await TestHTTPServer.start { _ in .ignore }
        let client = client(server.baseURL, timeout: .seconds(30))
        async let result = client.lookUp(Self.alice)
        #expect(await server.requestsReceived.wait(atLeast: 1))
        await client.shutdown()
        let why = reason(await result)
        #expect(why != nil)
        await server.stop()
    }

    // MARK: 12. Where the session goes on a redirect

    @Test("a redirect from https to plain http on the same host name does not carry the session")
    func downgradeRedirectDropsSession() async throws {
        // Both by the name "localhost": only the scheme (and the port) tell the two origins apart.
        let certificate = try await TestCertificate.localhost.value
        let plain = try await TestHTTPServer.start { _ in .answer(Reply(json: Self.roomInfoJSON)) }
        let secure = try await TestHTTPServer.start(tls: try certificate.serverContext()) { _ in
            .answer(Reply(status: .found, headers: ["Location": "http://localhost:\(plain.port)/elsewhere"]))
        }
        let client = client("https://localhost:\(secure.port)", session: "s3cr3t", tls: try certificate.trustingClient())
        guard case .live = await client.roomInfo(Self.roomID) else {
            Issue.record("not live after the redirect")
            return
        }
        #expect(secure.requests.first?.headers.first(name: "Cookie")?.contains("sessionid=s3cr3t") == true,
                "the session went to the https origin it is meant for")
        let followed = try #require(plain.requests.first)
        #expect(plain.requests.count == 1)
        #expect(followed.path == "/elsewhere")
        #expect(followed.headers["Host"] == ["localhost:\(plain.port)"])
        // In clear text anyone on the way reads it.
        #expect(!followed.headers["Cookie"].contains { $0.contains("sessionid") }, "\(followed.headers["Cookie"])")
        await client.shutdown()
        await secure.stop()
        await plain.stop()
    }

    enum RedirectTarget: String, CaseIterable, Sendable {
        case otherHost = "another host", otherPort = "another port of the same host", sameOrigin = "the same origin"
    }

    @Test("a redirect carries the cookies, the session among them, to the origin they were meant for only",
          arguments: RedirectTarget.allCases)
    func redirectCookies(to target: RedirectTarget) async throws {
        let other = try await TestHTTPServer.start { _ in .answer(Reply(json: Self.roomInfoJSON)) }
        let port = Locked(0)
        let first = try await TestHTTPServer.start { request in
            if request.path == "/elsewhere" { return .answer(Reply(json: Self.roomInfoJSON)) }
            let location = switch target {
            case .otherHost: "http://localhost:\(port.withLock { $0 })/elsewhere"
            case .otherPort: "http://127.0.0.1:\(other.port)/elsewhere"
            case .sameOrigin: "http://127.0.0.1:\(port.withLock { $0 })/elsewhere"
            }
            return .answer(Reply(status: .found, headers: ["Location": location]))
        }
        port.withLock { $0 = first.port }
        let client = client(first.baseURL, session: "s3cr3t")
        guard case .live = await client.roomInfo(Self.roomID) else {
            Issue.record("not live after the redirect")
            return
        }
        #expect(first.requests.first?.headers.first(name: "Cookie")?.contains("sessionid=s3cr3t") == true)
        let followed = try #require(target == .otherPort ? other.requests.first : first.requests.dropFirst().first)
        #expect(followed.path == "/elsewhere")
        let authority = switch target {
        case .otherHost: "localhost:\(first.port)"
        case .otherPort: "127.0.0.1:\(other.port)"
        case .sameOrigin: "127.0.0.1:\(first.port)"
        }
        #expect(followed.headers["Host"] == [authority])
        if target == .sameOrigin {
            #expect(followed.headers["Cookie"] == ["tt-target-idc=useast1a; sessionid=s3cr3t; sessionid_ss=s3cr3t; sid_tt=s3cr3t"])
        } else {
            // Another host or port is another server, maybe another owner's.
            #expect(followed.headers["Cookie"].isEmpty, "no cookie to \(target.rawValue): \(followed.headers["Cookie"])")
        }
        await client.shutdown()
        await first.stop()
        await other.stop()
    }

    // MARK: 13. Empty answers labelled compressed

    @Test("an empty answer labelled gzip is the empty answer of a block, not a broken gzip")
    func emptyGzipAnswer() async throws {
        // A front end that blocks may stamp its usual Content-Encoding on the empty answer it sends.
        let server = try await TestHTTPServer.start { _ in
            .answer(Reply(headers: ["Content-Type": "application/json", "Content-Encoding": "gzip"]))
        }
        let client = client(server.baseURL)
        let result = await client.lookUp(Self.alice)
        guard case .unknown = result else {
            Issue.record("not unknown: \(result)")
            return
        }
        #expect(result.block == .emptyBody, "\(result)")
        #expect(server.requests.first?.headers.first(name: "Accept-Encoding")?.contains("gzip") == true)
        await client.shutdown()
        await server.stop()
    }

    // MARK: 14. Room info refused although the session was sent

    @Test("room info's 4003110 is a restricted room without a session, a block signal with one")
    func roomInfoRefusedWithSession() async throws {
        let server = try await TestHTTPServer.start { _ in
            .answer(Reply(json: #"{"data":{"prompts":"This LIVE is age-restricted"},"extra":{"now":1},"status_code":4003110}"#))
        }
        let anonymous = client(server.baseURL)
        #expect(await anonymous.roomInfo(Self.roomID) == .restricted)
        let withSession = client(server.baseURL, session: "s3cr3t")
        guard case .unknown(let reason, .roomInfoRefused?) = await withSession.roomInfo(Self.roomID) else {
            Issue.record("not a block signal with the session sent")
            return
        }
        #expect(!reason.contains("s3cr3t"), "the session never goes into a reason: \(reason)")
        await anonymous.shutdown()
        await withSession.shutdown()
        await server.stop()
    }
}

/// Counts the starts asked for; `failing` throws as a stop would.
private final class CountingPacing: FollowUpPacing {
    private let count = Mutex(0)
    private let failing: Bool

    init(failing: Bool = false) { self.failing = failing }

    var starts: Int { count.withLock { $0 } }

    func nextStart() async throws {
        count.withLock { $0 += 1 }
        if failing { throw CancellationError() }
    }
}
