import CShims
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import TTTControl

#if canImport(Glibc)
import Glibc
#endif

enum ControlServerError: Error, CustomStringConvertible {
    case anotherDaemon(String)
    case notASocket(String)
    case cannotPrepare(String, String)

    var description: String {
        switch self {
        case .anotherDaemon(let path): return "another tttd is already listening on \(path); stop it first (or set control.socket)"
        case .notASocket(let path): return "\(path) exists and is not a socket; remove it or set control.socket"
        case let .cannotPrepare(path, reason): return "cannot create the control socket \(path): \(reason)"
        }
    }
}

/// The Unix-socket server: newline-delimited JSON-RPC, one task per connection, the peer's role from
/// SO_PEERCRED. Connections end when the client leaves or when tttd shuts down gracefully.
struct ControlServer: Sendable {
    typealias Connection = NIOAsyncChannel<RequestFrame, ByteBuffer>

    let path: String
    let viewerGroup: @Sendable () -> UInt32?
    let methods: ControlMethods
    let logger: Logger
    /// Connections beyond this are closed at once, so a flood of clients cannot exhaust descriptors.
    let maxConnections = 512

    /// Refuses to start when another daemon answers on the path; removes a stale socket file.
    static func claim(path: String) throws(ControlServerError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard (info.st_mode & S_IFMT) == S_IFSOCK else { throw .notASocket(path) }
        do {
            _ = try ControlClient(path: path)
            throw ControlServerError.anotherDaemon(path)
        } catch let error as ControlServerError {
            throw error
        } catch {
            // Nobody listens: a socket file left by a tttd that died.
            if unlink(path) != 0 && errno != ENOENT {
                throw .cannotPrepare(path, String(cString: strerror(errno)))
            }
        }
    }

    func bind() async throws -> NIOAsyncChannel<(Connection, ttt_ucred), Never> {
        try Self.claim(path: path)
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            // A client may send its request and shut its side down (`nc -N`): it still gets the answer.
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .bind(unixDomainSocketPath: path, cleanupExistingSocketFile: false) { (channel: any Channel) -> EventLoopFuture<(Connection, ttt_ucred)> in
                guard let provider = channel as? any SocketOptionProvider else {
                    return channel.eventLoop.makeFailedFuture(ChannelError.operationUnsupported)
                }
                return provider.unsafeGetSocketOption(
                    level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(ttt_so_peercred)
                ).flatMapThrowing { (credentials: ttt_ucred) in
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(LineFrameDecoder(maxLength: RPC.maxRequestBytes)))
                    let connection = try Connection(wrappingChannelSynchronously: channel)
                    return (connection, credentials)
                }
            }
        // Mode 0660, group = viewers: the file system lets only tttd's users in; the roles decide the rest.
        if let gid = viewerGroup(), chown(path, uid_t(bitPattern: -1), gid) != 0 {
            logger.warning("cannot give the control socket to the viewer group", metadata: ["error": "\(String(cString: strerror(errno)))"])
        }
        chmod(path, 0o660)
        return server
    }

    func serve(_ server: NIOAsyncChannel<(Connection, ttt_ucred), Never>) async throws {
        let open = ConnectionCounter()
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { inbound in
                for try await (connection, credentials) in inbound.cancelOnGracefulShutdown() {
                    guard open.enter(limit: maxConnections) else {
                        logger.warning("too many control connections; closing a new one", metadata: ["limit": "\(maxConnections)"])
                        try? await connection.channel.close()
                        continue
                    }
                    group.addTask {
                        defer { open.leave() }
                        await handle(connection, credentials: credentials)
                    }
                }
            }
        }
        unlink(path)
    }

    private func handle(_ connection: Connection, credentials: ttt_ucred) async {
        let peer = methods.roles.peer(from: credentials)
        var logger = self.logger
        logger[metadataKey: "peer"] = "\(peer)"
        let dispatcher = RequestDispatcher(methods: methods, peer: peer, logger: logger)
        do {
            try await connection.executeThenClose { inbound, outbound in
                for try await frame in inbound.cancelOnGracefulShutdown() {
                    switch await dispatcher.outcome(of: frame) {
                    case .reply(let reply):
                        try await outbound.write(ByteBuffer(data: reply))
                    case .silent:
                        continue
                    case let .follow(reply, id, subscription):
                        do { try await outbound.write(ByteBuffer(data: reply)) } catch {
                            // The client left before its reply: nobody will read this subscription.
                            await methods.feed.unsubscribe(id)
                            throw error
                        }
                        await stream(subscription, to: outbound, channel: connection.channel)
                        await methods.feed.unsubscribe(id)
                        return
                    }
                }
            }
        } catch {
            logger.debug("control connection ended", metadata: ["error": "\(error)"])
        }
    }
}

extension ControlServer {
    /// How long a follower tttd ends gets to take the notice that says why, before its connection
    /// is closed: it may never read again (a suspended terminal), and must not hold up a stop.
    static func noticeGrace(_ end: EventFeed.Subscription.End) -> Duration {
        switch end {
        case .overflowed: return .seconds(30)
        case .shuttingDown: return .seconds(2)
        }
    }

    static func notice(_ end: EventFeed.Subscription.End) -> String {
        switch end {
        case .overflowed:
            return #"{"jsonrpc":"2.0","method":"error","params":{"code":"too_slow","message":"this follower fell too far behind and was disconnected; follow again"}}"# + "\n"
        case .shuttingDown:
            return #"{"jsonrpc":"2.0","method":"error","params":{"code":"shutting_down","message":"tttd is stopping; follow again when it is back"}}"# + "\n"
        }
    }

    /// Writes a follower's events until it leaves, falls too far behind, or tttd stops.
    private func stream(_ subscription: EventFeed.Subscription, to outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                        channel: any Channel) async {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await line in subscription.stream {
                        // Cut off or stopping: what is still queued is dropped, the notice goes next.
                        if subscription.endReason != nil { break }
                        do { try await outbound.write(line) } catch { return }
                    }
                    guard let end = subscription.endReason else { return }
                    try? await outbound.write(ByteBuffer(string: Self.notice(end)))
                    // Closing drops what is still queued, the notice included: wait until it has
                    // reached the socket (an empty write completes after every earlier one).
                    await Self.waitForFlush(channel, atMost: Self.noticeGrace(end))
                }
                group.addTask { try? await channel.closeFuture.get() }
                group.addTask {
                    // A write to a follower that reads nothing waits for room in its socket for
                    // ever: once ended, the connection is closed after the grace whatever the writer does.
                    for await _ in subscription.ended {}
                    guard let end = subscription.endReason else { return }
                    try? await Task.sleep(for: Self.noticeGrace(end))
                }
                await group.next()
                // Whichever ended first, the connection is over; closing it also ends the others
                // (a future's wait does not end on cancellation).
                try? await channel.close()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            subscription.end(.shuttingDown)
        }
    }
}

extension ControlServer {
    static func waitForFlush(_ channel: any Channel, atMost limit: Duration) async {
        let flushed = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(NIOAny(ByteBuffer()), promise: flushed)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await flushed.futureResult.get() }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
    }
}

import Synchronization

final class ConnectionCounter: Sendable {
    private let count = Mutex(0)

    func enter(limit: Int) -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { count.withLock { $0 -= 1 } }
}
