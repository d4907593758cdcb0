import Foundation
import TestSupport
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Synchronization

// In-process servers on real sockets (127.0.0.1, port 0) for the HTTP client's tests: an HTTP/1.1
// origin (optionally over TLS) whose answers come from a closure, and an HTTP proxy (CONNECT
// tunnels and absolute-form requests). Both record what they receive, and on which connection.

// MARK: - Events to await

/// A value behind a lock, in a class so that escaping closures can share it.
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try mutex.withLock { try body(&$0) }
    }
}

/// A counter that can be awaited ("at least n"), so that tests wait for events rather than sleep.
final class EventCounter: Sendable {
    private struct State {
        var count = 0
        var waiters: [(Int, CheckedContinuation<Void, Never>)] = []
    }

    private let state = Mutex(State())

    var value: Int { state.withLock { $0.count } }

    func increment() {
        let ready = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.count += 1
            let count = state.count
            let ready = state.waiters.filter { $0.0 <= count }.map(\.1)
            state.waiters.removeAll { $0.0 <= count }
            return ready
        }
        for waiter in ready { waiter.resume() }
    }

    /// Waits until the counter reaches `target`; false if `timeout` passed first (a safety net, not a synchronisation).
    func wait(atLeast target: Int, timeout: Duration = .seconds(10)) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let now = self.state.withLock { state -> Bool in
                        if state.count >= target { return true }
                        state.waiters.append((target, continuation))
                        return false
                    }
                    if now { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            if !first {
                // Release the waiter so that the group can finish.
                let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                    defer { state.waiters.removeAll() }
                    return state.waiters.map(\.1)
                }
                for waiter in waiters { waiter.resume() }
            }
            group.cancelAll()
            return first
        }
    }
}

// MARK: - Certificates

/// A throwaway self-signed certificate, made with the `openssl` CLI into a temporary directory.
struct TestCertificate: Sendable {
    var certificatePath: String
    var keyPath: String

    /// For `localhost` and 127.0.0.1, made once per test process (`try await localhost.value`).
    static let localhost = Task { try await make(subjectAltName: "DNS:localhost,IP:127.0.0.1") }

    static func make(subjectAltName: String) async throws -> TestCertificate {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tttd-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let key = directory.appendingPathComponent("k.pem").path
        let certificate = directory.appendingPathComponent("c.pem").path
        try await run("/usr/bin/env", ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", certificate,
                                 "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=\(subjectAltName)"])
        return TestCertificate(certificatePath: certificate, keyPath: key)
    }

    func serverContext() throws -> NIOSSLContext {
        let configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificatePath).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: keyPath, format: .pem)))
        return try NIOSSLContext(configuration: configuration)
    }

    /// A client configuration that trusts this certificate only.
    func trustingClient() throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(certificatePath))
        return tls
    }
}

struct ProcessFailure: Error, CustomStringConvertible {
    var description: String
}

/// Runs a command to completion; its standard output, or a failure with its standard error.
@discardableResult
func run(_ executable: String, _ arguments: [String], input: Data? = nil) async throws -> Data {
    let result = try await runCommand(executable, arguments, input: input)
    guard result.status == 0 else {
        throw ProcessFailure(description: "\(arguments.first ?? executable) failed: \(result.stderr)")
    }
    return result.output
}

/// `bytes` compressed by the `gzip` CLI.
func gzipped(_ bytes: Data) async throws -> Data {
    try await run("/usr/bin/env", ["gzip", "-c", "-n"], input: bytes)
}

// MARK: - HTTP/1.1 origin server

/// One request as the server received it.
struct RecordedRequest: Sendable {
    /// 1 for the first connection the server accepted, 2 for the second, ...
    var connection: Int
    /// 1 for the first request on its connection.
    var indexOnConnection: Int
    var method: HTTPMethod
    var uri: String
    var headers: HTTPHeaders
    /// When its end was read, on the server's event loop.
    var arrived = ContinuousClock.now

    var path: String { String(uri.prefix { $0 != "?" }) }
    var query: [String: String] {
        let items = URLComponents(string: uri)?.queryItems ?? []
        return Dictionary(items.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
    }
}

struct Reply: Sendable {
    var status: HTTPResponseStatus = .ok
    var headers: HTTPHeaders = ["Content-Type": "application/json"]
    var body: ByteBuffer = ByteBuffer()

    init(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = ["Content-Type": "application/json"], body: ByteBuffer = ByteBuffer()) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    init(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = ["Content-Type": "application/json"], json: String) {
        self.init(status: status, headers: headers, body: ByteBuffer(string: json))
    }
}

/// What the server does with a request.
enum ServerAction: Sendable {
    case answer(Reply)
    /// Answers (without `Connection: close`), then closes the connection anyway, as a server that drops idle connections.
    case answerThenClose(Reply)
    /// Closes the connection without answering.
    case close
    /// Keeps the connection open and never answers.
    case ignore
}

final class TestHTTPServer: Sendable {
    typealias Handler = @Sendable (RecordedRequest) -> ServerAction

    let channel: any Channel
    let port: Int
    let connectionsAccepted = EventCounter()
    let connectionsClosed = EventCounter()
    let requestsReceived = EventCounter()
    private let recorded = Mutex<[RecordedRequest]>([])
    private let closings = Mutex<[Int: ContinuousClock.Instant]>([:])
    private let children = Mutex<[any Channel]>([])

    var requests: [RecordedRequest] { recorded.withLock { $0 } }
    /// When connection `number` (1 for the first accepted) was seen closed, on the server's event
    /// loop: timings the test's own clock would stretch by any wait for a cooperative thread.
    func closed(connection number: Int) -> ContinuousClock.Instant? { closings.withLock { $0[number] } }
    /// `http://127.0.0.1:PORT`, or `https://…` when the server speaks TLS.
    let baseURL: String

    private init(channel: any Channel, tls: Bool) {
        self.channel = channel
        port = channel.localAddress?.port ?? 0
        baseURL = "\(tls ? "https" : "http")://127.0.0.1:\(port)"
    }

    static func start(host: String = "127.0.0.1", tls: NIOSSLContext? = nil, handler: @escaping Handler) async throws -> TestHTTPServer {
        let box = Locked<TestHTTPServer?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard let server = box.withLock({ $0 }) else { return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
                let number = server.accepted(channel)
                do {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(OriginHandler(server: server, connection: number, handler: handler))
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
            .bind(host: host, port: 0).get()
        let server = TestHTTPServer(channel: channel, tls: tls != nil)
        box.withLock { $0 = server }
        return server
    }

    private func accepted(_ channel: any Channel) -> Int {
        children.withLock { $0.append(channel) }
        connectionsAccepted.increment()
        let number = connectionsAccepted.value
        channel.closeFuture.whenComplete { _ in
            self.closings.withLock { $0[number] = .now }
            self.connectionsClosed.increment()
        }
        return number
    }

    fileprivate func record(_ request: RecordedRequest) {
        recorded.withLock { $0.append(request) }
        requestsReceived.increment()
    }

    /// Closes every accepted connection (the listening socket stays open).
    func closeConnections() async {
        for child in children.withLock({ $0 }) { try? await child.close() }
    }

    func stop() async {
        await closeConnections()
        try? await channel.close()
    }
}

private final class OriginHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: TestHTTPServer
    private let connection: Int
    private let handler: TestHTTPServer.Handler
    private var head: HTTPRequestHead?
    private var count = 0

    init(server: TestHTTPServer, connection: Int, handler: @escaping TestHTTPServer.Handler) {
        self.server = server
        self.connection = connection
        self.handler = handler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
        case .body:
            break
        case .end:
            guard let head else { return }
            count += 1
            let request = RecordedRequest(connection: connection, indexOnConnection: count, method: head.method,
                                          uri: head.uri, headers: head.headers)
            server.record(request)
            let channel = context.channel
            switch handler(request) {
            case .answer(let reply):
                write(reply, context: context)
            case .answerThenClose(let reply):
                write(reply, context: context).whenComplete { _ in channel.close(promise: nil) }
            case .close:
                context.close(promise: nil)
            case .ignore:
                break
            }
        }
    }

    @discardableResult
    private func write(_ reply: Reply, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        var headers = reply.headers
        if !headers.contains(name: "Content-Length") {
            headers.add(name: "Content-Length", value: String(reply.body.readableBytes))
        }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: reply.status, headers: headers))), promise: nil)
        if reply.body.readableBytes > 0 { context.write(wrapOutboundOut(.body(.byteBuffer(reply.body))), promise: nil) }
        return context.writeAndFlush(wrapOutboundOut(.end(nil)))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

// MARK: - HTTP proxy

/// What the proxy received: the request line and headers of a CONNECT or an absolute-form request.
struct ProxyRequest: Sendable {
    var connection: Int
    var requestLine: String
    var headers: [(name: String, value: String)]

    var method: String { String(requestLine.prefix { $0 != " " }) }
    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
}

/// An HTTP proxy: `CONNECT host:port` opens a tunnel to the target and splices bytes both ways;
/// absolute-form requests (`GET http://host:port/path`) are answered by `answer`. With
/// `requiredAuthorization`, a request without that exact `Proxy-Authorization` gets 407.
final class TestProxy: Sendable {
    typealias Answer = @Sendable (ProxyRequest) -> Reply

    let channel: any Channel
    let port: Int
    let requiredAuthorization: String?
    let answer: Answer
    let connectionsAccepted = EventCounter()
    private let recorded = Mutex<[ProxyRequest]>([])
    private let channels = Mutex<[any Channel]>([])

    var requests: [ProxyRequest] { recorded.withLock { $0 } }

    private init(channel: any Channel, requiredAuthorization: String?, answer: @escaping Answer) {
        self.channel = channel
        port = channel.localAddress?.port ?? 0
        self.requiredAuthorization = requiredAuthorization
        self.answer = answer
    }

    static func start(requiredAuthorization: String? = nil,
                      answer: @escaping Answer = { _ in Reply(status: .badGateway) }) async throws -> TestProxy {
        let box = Locked<TestProxy?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard let proxy = box.withLock({ $0 }) else { return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
                proxy.channels.withLock { $0.append(channel) }
                proxy.connectionsAccepted.increment()
                let number = proxy.connectionsAccepted.value
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ProxyHandler(proxy: proxy, connection: number))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let proxy = TestProxy(channel: channel, requiredAuthorization: requiredAuthorization, answer: answer)
        box.withLock { $0 = proxy }
        return proxy
    }

    fileprivate func record(_ request: ProxyRequest) {
        recorded.withLock { $0.append(request) }
    }

    fileprivate func track(_ channel: any Channel) {
        channels.withLock { $0.append(channel) }
    }

    func stop() async {
        for child in channels.withLock({ $0 }) { try? await child.close() }
        try? await channel.close()
    }
}

private final class ProxyHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let proxy: TestProxy
    private let connection: Int
    private var buffer = ByteBuffer()
    private enum Mode { case requests, connecting, tunnel(any Channel) }
    private var mode = Mode.requests

    init(proxy: TestProxy, connection: Int) {
        self.proxy = proxy
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var part = unwrapInboundIn(data)
        switch mode {
        case .tunnel(let target):
            target.writeAndFlush(part, promise: nil)
        case .connecting, .requests:
            buffer.writeBuffer(&part)
            if case .requests = mode { processRequests(context: context) }
        }
    }

    private func processRequests(context: ChannelHandlerContext) {
        while case .requests = mode {
            let view = buffer.readableBytesView
            guard let end = view.firstRange(of: [13, 10, 13, 10]) else { return }
            let headText = String(decoding: view[view.startIndex..<end.lowerBound], as: UTF8.self)
            buffer.moveReaderIndex(forwardBy: end.upperBound - view.startIndex)
            let lines = headText.components(separatedBy: "\r\n")
            let headers = lines.dropFirst().compactMap { line -> (name: String, value: String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
            }
            let request = ProxyRequest(connection: connection, requestLine: lines.first ?? "", headers: headers)
            proxy.record(request)
            if let required = proxy.requiredAuthorization, request.header("Proxy-Authorization") != required {
                let text = "HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n"
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(string: text)), promise: nil)
                continue
            }
            if request.method == "CONNECT" {
                openTunnel(request, context: context)
            } else {
                respond(proxy.answer(request), context: context)
            }
        }
    }

    private func respond(_ reply: Reply, context: ChannelHandlerContext) {
        var text = "HTTP/1.1 \(reply.status.code) \(reply.status.reasonPhrase)\r\n"
        var headers = reply.headers
        if !headers.contains(name: "Content-Length") { headers.add(name: "Content-Length", value: String(reply.body.readableBytes)) }
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        var out = ByteBuffer(string: text)
        var body = reply.body
        out.writeBuffer(&body)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    private func openTunnel(_ request: ProxyRequest, context: ChannelHandlerContext) {
        let fields = request.requestLine.split(separator: " ")
        guard fields.count == 3, let colon = fields[1].lastIndex(of: ":"), let port = Int(fields[1][fields[1].index(after: colon)...]) else {
            respond(Reply(status: .badRequest), context: context)
            return
        }
        let host = String(fields[1][..<colon])
        mode = .connecting
        let client = context.channel
        let proxy = self.proxy
        ClientBootstrap(group: context.eventLoop)
            .channelInitializer { target in
                target.eventLoop.makeCompletedFuture {
                    try target.pipeline.syncOperations.addHandler(SpliceHandler(peer: client))
                }
            }
            .connect(host: host, port: port)
            .whenComplete { result in
                switch result {
                case .success(let target):
                    proxy.track(target)
                    self.tunnelOpened(to: target, client: client)
                case .failure:
                    client.writeAndFlush(ByteBuffer(string: "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"))
                        .whenComplete { _ in client.close(promise: nil) }
                }
            }
    }

    /// On the client connection's event loop (the target was connected on the same loop).
    private func tunnelOpened(to target: any Channel, client: any Channel) {
        mode = .tunnel(target)
        client.writeAndFlush(ByteBuffer(string: "HTTP/1.1 200 Connection Established\r\n\r\n"), promise: nil)
        if buffer.readableBytes > 0 {
            target.writeAndFlush(buffer, promise: nil)
            buffer.clear()
        }
        client.closeFuture.whenComplete { _ in target.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .tunnel(let target) = mode { target.close(promise: nil) }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

/// Forwards whatever it reads to `peer`, and closes `peer` when its own connection closes.
private final class SpliceHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer

    private let peer: any Channel

    init(peer: any Channel) {
        self.peer = peer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        peer.writeAndFlush(unwrapInboundIn(data), promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer.close(promise: nil)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

// MARK: - Ports

/// A port on 127.0.0.1 where nothing listens: bound, then closed.
func closedPort() async throws -> Int {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 0
    try await channel.close()
    return port
}
