import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// The scheme, host and port a request goes to.
struct Origin: Hashable, Sendable {
    var tls: Bool
    var host: String
    var port: Int

    init(tls: Bool, host: String, port: Int) {
        self.tls = tls
        self.host = host
        self.port = port
    }

    init?(_ url: URL) {
        guard let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty
        else { return nil }
        self.init(tls: scheme == "https", host: host, port: url.port ?? (scheme == "https" ? 443 : 80))
    }

    /// The `Host` header: the port only when it is not the scheme's own.
    var authority: String { port == (tls ? 443 : 80) ? host : "\(host):\(port)" }
}

/// An HTTP proxy (`http://[user:password@]host:port`): https origins through a `CONNECT` tunnel,
/// http origins by absolute-form requests, as browsers and curl do.
struct HTTPProxy: Sendable {
    var host: String
    var port: Int
    /// `Basic …` when the URL carries credentials; a secret, sent only to the proxy.
    var authorization: String?
    /// `Proxy-Authorization`, for the requests sent to the proxy in absolute form (http origins).
    var authorizationField: HeaderBlock?

    init?(_ text: String) {
        guard let url = URL(string: text), url.scheme?.lowercased() == "http", let host = url.host, !host.isEmpty else { return nil }
        self.host = host
        port = url.port ?? 8080
        if let user = url.user(percentEncoded: false) {
            let password = url.password(percentEncoded: false) ?? ""
            let basic = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
            authorization = basic
            authorizationField = HeaderBlock(["Proxy-Authorization": basic])
        }
    }
}

/// Kept-alive HTTP/1.1 connections to a few origins, directly or through one proxy, on the
/// process's event loops. A check costs one write and one read on a warm connection — no
/// connection pool state machine, no body stream, no task hop beyond the await of the answer.
final class HTTP1Pool: @unchecked Sendable {
    private let group: any EventLoopGroup
    private let proxy: HTTPProxy?
    private let tls: Result<NIOSSLContext, any Error>
    private let connectTimeout: TimeAmount
    private let maxBodyBytes: Int
    /// A server may drop a connection it has kept idle; past this age one is not reused.
    private let maxIdle: TimeAmount = .seconds(50)
    private let maxIdlePerOrigin = 16

    private struct Connection {
        var channel: any Channel
        var collector: ResponseCollector
        var idleSince: NIODeadline
    }

    private struct State {
        var idle: [Origin: [Connection]] = [:]
        var open: [ObjectIdentifier: any Channel] = [:]
        var shutDown = false
    }

    private let state = NIOLockedValueBox(State())
    private let allocator = ByteBufferAllocator()

    init(group: any EventLoopGroup, proxy: HTTPProxy?, tls: TLSConfiguration, connectTimeout: TimeAmount, maxBodyBytes: Int) {
        self.group = group
        self.proxy = proxy
        self.tls = Result { try NIOSSLContext(configuration: tls) }
        self.connectTimeout = connectTimeout
        self.maxBodyBytes = maxBodyBytes
    }

    /// GETs `target` (path and query) from `origin` with `headers`, Host among them. They are sent
    /// as given (`RequestEncoder`), so the caller builds them from values it has checked. A retry
    /// waits for `followUps` first: the request it repeats may have reached the server.
    func get(_ origin: Origin, target: String, headers: HeaderBlock, timeout: TimeAmount,
             followUps: (any FollowUpPacing)?) async throws -> ResponseCollector.Answer {
        var uri = target
        var extra: HeaderBlock?
        if let proxy, !origin.tls {
            uri = "http://\(origin.authority)\(target)"
            extra = proxy.authorizationField
        }
        guard let request = RequestEncoder.get(uri, fields: headers, extra: extra, allocator: allocator) else {
            throw HTTPFailure.protocolError("a request target with a space or a control character")
        }
        if let connection = takeIdle(origin) {
            do {
                return try await exchange(request, on: connection, origin: origin, timeout: timeout)
            } catch HTTPFailure.closedBeforeAnswer {
                // The server closed a connection it had kept idle (or a WAF resets every one after
                // reading the request): once more on a new one, at the egress's next start.
                do { try await followUps?.nextStart() } catch { throw HTTPFailure.cancelled }
            }
        }
        if Task.isCancelled { throw HTTPFailure.cancelled }
        let connection = try await connect(origin)
        return try await exchange(request, on: connection, origin: origin, timeout: timeout)
    }

    func shutdown() async {
        let channels = state.withLockedValue { state in
            state.shutDown = true
            state.idle = [:]
            return Array(state.open.values)
        }
        for channel in channels { try? await channel.close() }
    }

    /// A cancelled task (tttd stopping, a pipeline ending) does not wait for the answer or its
    /// timeout: the exchange ends as `cancelled` and its connection is closed.
    private func exchange(_ request: ByteBuffer, on connection: Connection, origin: Origin, timeout: TimeAmount) async throws -> ResponseCollector.Answer {
        let loop = connection.channel.eventLoop
        let answer = try await withTaskCancellationHandler {
            try await withUnsafeThrowingContinuation { (waiter: UnsafeContinuation<ResponseCollector.Answer, any Error>) in
                // After the handler is in place: either this sees the cancellation or the handler sees the exchange.
                guard !Task.isCancelled else { return waiter.resume(throwing: HTTPFailure.cancelled) }
                connection.collector.send(request, timeout: timeout, on: loop, waiter: waiter)
            }
        } onCancel: {
            connection.collector.cancel(on: loop)
        }
        if answer.reusable { putIdle(connection, origin: origin) }
        return answer
    }

    private func takeIdle(_ origin: Origin) -> Connection? {
        let now = NIODeadline.now()
        var stale: [any Channel] = []
        let found = state.withLockedValue { state -> Connection? in
            guard var connections = state.idle.removeValue(forKey: origin) else { return nil }
            defer { state.idle[origin] = connections }
            while !connections.isEmpty {
                // Preferably one on the loop this task runs on: the request is written and its
                // answer awaited there, without waking another loop's thread to write it.
                let index = connections.lastIndex(where: { $0.channel.eventLoop.inEventLoop }) ?? connections.count - 1
                let connection = connections.remove(at: index)
                if connection.channel.isActive, now - connection.idleSince < maxIdle { return connection }
                stale.append(connection.channel)
            }
            return nil
        }
        for channel in stale { channel.close(promise: nil) }
        return found
    }

    private func putIdle(_ connection: Connection, origin: Origin) {
        var connection = connection
        connection.idleSince = .now()
        let kept = state.withLockedValue { state -> Bool in
            guard !state.shutDown, state.open[ObjectIdentifier(connection.channel)] != nil,
                  state.idle[origin, default: []].count < maxIdlePerOrigin else { return false }
            state.idle[origin, default: []].append(connection)
            return true
        }
        if !kept { connection.channel.close(promise: nil) }
    }

    private func connect(_ origin: Origin) async throws -> Connection {
        if state.withLockedValue({ $0.shutDown }) { throw HTTPFailure.shutDown }
        let sslContext: NIOSSLContext?
        if origin.tls {
            do { sslContext = try tls.get() } catch { throw HTTPFailure.tls("\(error)") }
        } else {
            sslContext = nil
        }
        let collector = ResponseCollector(maxBodyBytes: maxBodyBytes)
        let tunnelTarget = origin.tls ? proxy.map { _ in "\(origin.host):\(origin.port)" } : nil
        if tunnelTarget != nil, Self.isAddress(origin.host) {
            // Without a name, NIOSSL checks the certificate against the peer's address: through a
            // tunnel that is the proxy's, so an address origin cannot be verified there.
            throw HTTPFailure.tls("an https origin given by address cannot be verified through a proxy; give its host name")
        }
        let loop = group.any()
        // Made here, not in the initializer: a proxy that answers at once may have closed the
        // channel, emptying its pipeline, before the tunnel handler could be looked up.
        let established = loop.makePromise(of: Void.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(connectTimeout)
            .channelInitializer { [proxy, connectTimeout] channel in
                do {
                    if let tunnelTarget, let proxy {
                        let tunnel = ProxyTunnel(target: tunnelTarget, authorization: proxy.authorization,
                                                 timeout: connectTimeout, established: established)
                        try channel.pipeline.syncOperations.addHandler(tunnel)
                    } else {
                        try Self.addHTTPHandlers(channel, tls: sslContext, serverHostname: origin.host,
                                                 collector: collector)
                    }
                    return channel.eventLoop.makeSucceededVoidFuture()
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }
        let channel: any Channel
        do {
            channel = try await bootstrap.connect(host: proxy?.host ?? origin.host, port: proxy?.port ?? origin.port).get()
        } catch {
            established.fail(HTTPFailure.shutDown)  // nobody waits on it; it must only not be left open
            throw Self.connectFailure(error, viaProxy: proxy != nil)
        }
        if tunnelTarget == nil { established.succeed(()) }
        let registered = state.withLockedValue { state -> Bool in
            guard !state.shutDown else { return false }
            state.open[ObjectIdentifier(channel)] = channel
            return true
        }
        guard registered else {
            channel.close(promise: nil)
            throw HTTPFailure.shutDown
        }
        channel.closeFuture.whenComplete { [weak self] _ in self?.forget(channel) }
        if tunnelTarget != nil {
            do {
                try await established.futureResult.flatMapThrowing {
                    let pipeline = channel.pipeline.syncOperations
                    pipeline.removeHandler(try pipeline.handler(type: ProxyTunnel.self), promise: nil)
                    try Self.addHTTPHandlers(channel, tls: sslContext, serverHostname: origin.host,
                                             collector: collector)
                }.get()
            } catch {
                channel.close(promise: nil)
                throw error as? HTTPFailure ?? .proxy(String("\(error)".prefix(120)))
            }
        }
        return Connection(channel: channel, collector: collector, idleSince: .now())
    }

    private func forget(_ channel: any Channel) {
        state.withLockedValue { state in
            state.open[ObjectIdentifier(channel)] = nil
            for (origin, connections) in state.idle where connections.contains(where: { $0.channel === channel }) {
                state.idle[origin] = connections.filter { $0.channel !== channel }
            }
        }
    }

    private static func addHTTPHandlers(_ channel: any Channel, tls: NIOSSLContext?, serverHostname: String,
                                        collector: ResponseCollector) throws {
        let pipeline = channel.pipeline.syncOperations
        if let tls {
            // SNI takes a name, never an address literal.
            try pipeline.addHandler(NIOSSLClientHandler(context: tls, serverHostname: isAddress(serverHostname) ? nil : serverHostname))
        }
        try pipeline.addHandler(collector)
    }

    private static func isAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }

    private static func connectFailure(_ error: any Error, viaProxy: Bool) -> HTTPFailure {
        if case ChannelError.connectTimeout = error { return viaProxy ? .proxy("connect timeout") : .connectTimeout }
        let why: String
        if let io = error as? IOError {
            why = String(cString: strerror(io.errnoCode)).lowercased()
        } else if let connection = error as? NIOConnectionError, let first = connection.connectionErrors.first?.error as? IOError {
            why = String(cString: strerror(first.errnoCode)).lowercased()
        } else if error is NIOConnectionError || error is SocketAddressError {
            why = "name not resolved"
        } else {
            why = String("\(error)".prefix(120))
        }
        return viaProxy ? .proxy("cannot connect (\(why))") : .cannotConnect(why)
    }
}
