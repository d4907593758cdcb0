import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Testing
@testable import TTTTikTok

/// A TLS server that closes a connection without close_notify: most servers do so to a connection
/// they kept idle, and the client must take it for a closed connection, as over plain http.
@Suite("HTTP TikTok client: TLS connections closed without close_notify", .timeLimit(.minutes(1)))
struct TLSUncleanCloseTests {
    @Test("an unclean TLS shutdown is a closed connection; other TLS errors stay TLS failures")
    func classification() {
        #expect(ResponseCollector.classify(NIOSSLError.uncleanShutdown) == .closed)
        guard case .tls = ResponseCollector.classify(NIOSSLError.readInInvalidTLSState) else {
            Issue.record("another TLS error is not reported as TLS: \(ResponseCollector.classify(NIOSSLError.readInInvalidTLSState))")
            return
        }
    }

    @Test("https: a kept-alive connection closed without close_notify when the request arrives is retried once on a fresh connection")
    func retryAfterUncleanClose() async throws {
        let certificate = try await TestCertificate.localhost.value
        let server = try await UncleanClosingServer.start(tls: try certificate.serverContext())
        let client = HTTPTikTokClient(endpoints: .init(web: server.baseURL, webcast: server.baseURL), proxy: nil, session: nil,
                                      timeout: .seconds(15), tls: try certificate.trustingClient())
        #expect(await client.lookUp(HTTPTikTokClientTests.alice) == HTTPTikTokClientTests.live)
        let second = await client.lookUp(HTTPTikTokClientTests.alice)
        #expect(second == HTTPTikTokClientTests.live, "\(second)")
        // The second request reached the kept-alive connection, which the server then dropped; it
        // was sent again on a second connection.
        #expect(server.requestConnections == [1, 1, 2])
        await client.shutdown()
        await server.stop()
    }
}

/// A TLS origin on 127.0.0.1 that answers `HTTPTikTokClientTests.liveJSON` to every request but the
/// second on its first connection: that connection is closed beneath its TLS handler, so the socket
/// closes without the close_notify NIOSSL would send first (TestHTTPServer's closes send it).
private final class UncleanClosingServer: Sendable {
    let channel: any Channel
    let port: Int
    let baseURL: String
    private let accepted = Locked(0)
    private let seen = Locked<[Int]>([])

    /// The connection (1 for the first accepted) of each request received, in order.
    var requestConnections: [Int] { seen.withLock { $0 } }

    private init(channel: any Channel) {
        self.channel = channel
        port = channel.localAddress?.port ?? 0
        baseURL = "https://127.0.0.1:\(port)"
    }

    static func start(tls: NIOSSLContext) async throws -> UncleanClosingServer {
        let box = Locked<UncleanClosingServer?>(nil)
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                guard let server = box.withLock({ $0 }) else { return channel.eventLoop.makeFailedFuture(ChannelError.ioOnClosedChannel) }
                let number = server.accepted.withLock { count -> Int in
                    count += 1
                    return count
                }
                return channel.eventLoop.makeCompletedFuture {
                    let pipeline = channel.pipeline.syncOperations
                    try pipeline.addHandler(NIOSSLServerHandler(context: tls))
                    try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
                    try pipeline.addHandler(UncleanClosingHandler(server: server, connection: number))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let server = UncleanClosingServer(channel: channel)
        box.withLock { $0 = server }
        return server
    }

    fileprivate func record(connection: Int) {
        seen.withLock { $0.append(connection) }
    }

    func stop() async {
        try? await channel.close()
    }
}

private final class UncleanClosingHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let server: UncleanClosingServer
    private let connection: Int
    private var count = 0

    init(server: UncleanClosingServer, connection: Int) {
        self.server = server
        self.connection = connection
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .end = unwrapInboundIn(data) else { return }
        count += 1
        server.record(connection: connection)
        if connection == 1 && count == 2 {
            // A close from the TLS handler's own context starts below that handler: the socket
            // closes with no close_notify written. Should the handler not be found, no answer at
            // all: the client's timeout shows it, rather than a clean close that would pass unnoticed.
            try? context.pipeline.syncOperations.context(handlerType: NIOSSLServerHandler.self).close(promise: nil)
            return
        }
        let body = ByteBuffer(string: HTTPTikTokClientTests.liveJSON)
        let headers: HTTPHeaders = ["Content-Type": "application/json", "Content-Length": String(body.readableBytes)]
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
