#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOSSL

/// Why a request got no answer. The descriptions are what `unknown(reason)` carries into logs and
/// `tttctl status`: short, and never a URL (a proxy's may hold credentials, a request's a session).
enum HTTPFailure: Error, Equatable, CustomStringConvertible {
    case timeout
    case connectTimeout
    case cannotConnect(String)
    /// Closed before the answer's head arrived: on a reused connection the server may have dropped
    /// it while idle, so the request is worth one more try on a fresh one.
    case closedBeforeAnswer
    case closed
    case tooLarge
    case proxy(String)
    case tls(String)
    case protocolError(String)
    case shutDown
    /// The task waiting for the answer was cancelled (tttd stopping, a pipeline ending).
    case cancelled

    var description: String {
        switch self {
        case .timeout: "timeout"
        case .connectTimeout: "connect timeout"
        case .cannotConnect(let why): "cannot connect: \(why)"
        case .closedBeforeAnswer, .closed: "connection closed by TikTok"
        case .tooLarge: "answer larger than the limit"
        case .proxy(let why): "proxy: \(why)"
        case .tls(let why): "TLS: \(why)"
        case .protocolError(let why): "bad HTTP: \(why)"
        case .shutDown: "shutting down"
        case .cancelled: "cancelled"
        }
    }
}

/// One HTTP/1.1 exchange at a time on a kept-alive connection: writes the request's bytes, reads
/// the answer into one buffer (`ResponseReader`; no async body stream: TikTok's answers are a few
/// kilobytes) and resumes the exchange's waiter from the connection's own event loop. All state is
/// confined to that loop, so the only way in from outside is `send`, hopping onto it.
final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    struct Answer {
        var head: AnswerHead
        var body: ByteBuffer
        /// The server keeps the connection open for another request.
        var reusable: Bool
    }

    private let maxBodyBytes: Int
    private var context: ChannelHandlerContext?
    /// The exchange in flight: a continuation rather than a promise, which would cost a future,
    /// its callbacks and their generic metadata on every check; an unsafe one, as `finish()` clears
    /// it before it is resumed, on this loop only, so it is resumed once.
    private var pending: UnsafeContinuation<Answer, any Error>?
    /// The answer of the exchange in flight, as far as it came.
    private var reader: ResponseReader?
    /// When the exchange in flight times out.
    private var deadline: NIODeadline?
    /// Armed by an exchange and left armed after it: when it fires it fails the exchange then in
    /// flight if that one's deadline passed, else re-arms for it. One timer per timeout's worth of
    /// exchanges on a busy connection, instead of one scheduled and cancelled on every check.
    private var timer: Scheduled<Void>?
    /// Why the connection failed while no exchange was in flight (a TLS handshake refused before the
    /// first request reached the loop): the next request reports that rather than a bare close.
    private var brokenBy: HTTPFailure?

    init(maxBodyBytes: Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        fail(.closedBeforeAnswer)
        timer?.cancel()
        timer = nil
    }

    /// Sends `request` (a whole request, `RequestEncoder`'s) on the connection's `loop` and resumes
    /// `waiter` with its answer, or with a failure within `timeout`.
    func send(_ request: ByteBuffer, timeout: TimeAmount, on loop: any EventLoop,
              waiter: UnsafeContinuation<Answer, any Error>) {
        if loop.inEventLoop {
            start(request, timeout: timeout, waiter: waiter)
        } else {
            loop.execute { self.start(request, timeout: timeout, waiter: waiter) }
        }
    }

    /// Ends the exchange in flight, if any: its task was cancelled.
    func cancel(on loop: any EventLoop) {
        if loop.inEventLoop {
            fail(.cancelled)
        } else {
            loop.execute { self.fail(.cancelled) }
        }
    }

    private func start(_ request: ByteBuffer, timeout: TimeAmount, waiter: UnsafeContinuation<Answer, any Error>) {
        guard let context, context.channel.isActive, pending == nil else {
            waiter.resume(throwing: brokenBy ?? HTTPFailure.closedBeforeAnswer)
            return
        }
        pending = waiter
        reader = ResponseReader(maxBodyBytes: maxBodyBytes)
        let deadline = NIODeadline.now() + timeout
        self.deadline = deadline
        if timer == nil { arm(at: deadline, on: context.eventLoop) }
        context.writeAndFlush(wrapOutboundOut(request), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard pending != nil else {
            // Bytes nobody asked for: the connection cannot be trusted for the next exchange.
            context.close(promise: nil)
            return
        }
        var bytes = unwrapInboundIn(data)
        do {
            if let answer = try reader!.read(&bytes) { complete(answer, context: context) }
        } catch {
            fail(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // An answer whose body is the rest of the connection ends here.
        do {
            if pending != nil, let answer = try reader?.end() {
                complete(answer, context: context)
            } else {
                fail(reader?.head == nil ? .closedBeforeAnswer : .closed)
            }
        } catch {
            fail(error)
        }
        context.fireChannelInactive()
    }

    private func complete(_ answer: Answer, context: ChannelHandlerContext) {
        guard let waiter = pending else { return }
        finish()
        waiter.resume(returning: answer)
        if !answer.reusable { context.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        var failure = Self.classify(error)
        if failure == .closed, reader?.head == nil { failure = .closedBeforeAnswer }
        if pending == nil, brokenBy == nil { brokenBy = failure }
        fail(failure)
        context.close(promise: nil)
    }

    /// Fails the exchange in flight, if any, and closes the connection: it is in an unknown state.
    private func fail(_ failure: HTTPFailure) {
        guard let waiter = pending else { return }
        finish()
        waiter.resume(throwing: failure)
        context?.close(promise: nil)
    }

    private func finish() {
        pending = nil
        reader = nil
        deadline = nil
    }

    private func arm(at deadline: NIODeadline, on loop: any EventLoop) {
        timer = loop.scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            timer = nil
            guard let due = self.deadline else { return }
            if due <= .now() { fail(.timeout) } else { arm(at: due, on: loop) }
        }
    }

    static func classify(_ error: any Error) -> HTTPFailure {
        if let failure = error as? HTTPFailure { return failure }
        // A TLS peer that closes without close_notify (most servers, dropping an idle connection)
        // has closed the connection, like a plain one: a request it never answered may be sent again.
        if let tls = error as? NIOSSLError, case .uncleanShutdown = tls { return .closed }
        if error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError {
            return .tls(String("\(error)".prefix(160)))
        }
        if let io = error as? IOError, io.errnoCode == ECONNRESET { return .closed }
        return .protocolError(String("\(error)".prefix(160)))
    }
}
