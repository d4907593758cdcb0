import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus
import ServiceLifecycle
import TTTConfig

public struct MetricsListenError: Error, CustomStringConvertible {
    let listen: String
    let reason: String

    public var description: String { "cannot listen on metrics.listen \(listen): \(reason)" }
}

/// The Prometheus endpoint on `metrics.listen`: `GET /metrics` answers the registry in the text
/// format (version 0.0.4), anything else 404. Runs until tttd shuts down gracefully.
public struct MetricsService: Service, CustomStringConvertible {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    public var description: String { "metrics endpoint" }

    let server: NIOAsyncChannel<Connection, Never>
    let registry: PrometheusCollectorRegistry
    let logger: Logger
    /// Scrapers need one or two; more are closed at once, so that clients cannot exhaust descriptors.
    let maxConnections = 16

    /// With `metrics.listen` set: sends swift-metrics to a Prometheus registry and opens the endpoint.
    /// Call it before the parts of tttd are built (they make their metrics then), and once. Nil
    /// when `metrics.listen` is not set: metrics then cost a no-op call.
    public static func start(_ configuration: TTTConfiguration.Metrics, logger: Logger) async throws(MetricsListenError)
        -> MetricsService? {
        guard let listen = configuration.listen, let address = configuration.listenAddress else { return nil }
        let registry = CatalogueMetricsFactory.bootstrap()
        do {
            let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .bind(host: address.host, port: address.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try Connection(wrappingChannelSynchronously: channel)
                    }
                }
            logger.notice("metrics endpoint listening", metadata: ["address": "\(listen)"])
            return MetricsService(server: server, registry: registry, logger: logger)
        } catch let error as IOError {
            throw MetricsListenError(listen: listen, reason: String(cString: strerror(error.errnoCode)))
        } catch {
            throw MetricsListenError(listen: listen, reason: "\(error)")
        }
    }

    public func run() async throws {
        let open = ConnectionCounter()
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await connection in inbound.cancelOnGracefulShutdown() {
                    guard open.enter(limit: maxConnections) else {
                        try? await connection.channel.close()
                        continue
                    }
                    group.addTask {
                        defer { open.leave() }
                        await serve(connection)
                    }
                }
            }
        }
    }

    private func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                for try await part in inbound.cancelOnGracefulShutdown() {
                    switch part {
                    case .head(let request):
                        head = request
                    case .body:
                        continue
                    case .end:
                        guard let request = head else { continue }
                        try await outbound.write(contentsOf: response(to: request))
                        if !request.isKeepAlive { return }
                    }
                }
            }
        } catch {
            logger.debug("metrics connection ended", metadata: ["error": "\(error)"])
        }
    }

    private func response(to request: HTTPRequestHead) -> [HTTPServerResponsePart] {
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first
        let found = request.method == .GET && path == "/metrics"
        let body = found ? ByteBuffer(bytes: registry.emitToBuffer()) : ByteBuffer(string: "not found\n")
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: "\(body.readableBytes)")
        if !request.isKeepAlive { headers.add(name: "Connection", value: "close") }
        return [.head(HTTPResponseHead(version: request.version, status: found ? .ok : .notFound, headers: headers)),
                .body(.byteBuffer(body)), .end(nil)]
    }
}
