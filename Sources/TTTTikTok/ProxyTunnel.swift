import NIOCore

/// Opens a `CONNECT` tunnel through an HTTP proxy, for https origins: sends the request when the
/// connection is up, reads the proxy's answer head, and completes `established` — after which the
/// caller removes this handler and speaks TLS through the tunnel. The answer head is read raw (a
/// proxy sends nothing after it until the client's TLS hello), so no HTTP codec has to be removed.
final class ProxyTunnel: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let established: EventLoopPromise<Void>
    private let target: String
    private let authorization: String?
    private let timeout: TimeAmount
    private var answer: ByteBuffer?
    private var timer: Scheduled<Void>?
    private static let maxHeadBytes = 16 * 1024

    /// `target` is `host:port`; `authorization` the Proxy-Authorization value (a secret: never logged).
    init(target: String, authorization: String?, timeout: TimeAmount, established: EventLoopPromise<Void>) {
        self.target = target
        self.authorization = authorization
        self.timeout = timeout
        self.established = established
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { open(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        open(context: context)
        context.fireChannelActive()
    }

    private func open(context: ChannelHandlerContext) {
        guard timer == nil else { return }
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { [weak self] in
            self?.fail(.proxy("no answer to CONNECT"), channel: channel)
        }
        var request = "CONNECT \(target) HTTP/1.1\r\nHost: \(target)\r\n"
        if let authorization { request += "Proxy-Authorization: \(authorization)\r\n" }
        request += "\r\n"
        context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: request)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var part = unwrapInboundIn(data)
        if answer == nil { answer = part } else { answer!.writeBuffer(&part) }
        let view = answer!.readableBytesView
        guard let end = view.firstRange(of: [13, 10, 13, 10]) else {
            if view.count > Self.maxHeadBytes { fail(.proxy("answer to CONNECT too long"), channel: context.channel) }
            return
        }
        guard end.upperBound == view.endIndex else {
            fail(.proxy("data before the tunnel was open"), channel: context.channel)
            return
        }
        let statusLine = String(decoding: view[..<(view.firstRange(of: [13, 10])?.lowerBound ?? end.lowerBound)], as: UTF8.self)
        let fields = statusLine.split(separator: " ", maxSplits: 2)
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/1."), let status = Int(fields[1]) else {
            fail(.proxy("not an HTTP proxy"), channel: context.channel)
            return
        }
        guard (200..<300).contains(status) else {
            fail(.proxy(status == 407 ? "authentication required (HTTP 407)" : "refused the tunnel (HTTP \(status))"),
                 channel: context.channel)
            return
        }
        timer?.cancel()
        answer = nil
        established.succeed(())
    }

    /// Also when the connection to the proxy never came up: the promise must not be left open.
    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        established.fail(HTTPFailure.proxy("closed the connection during CONNECT"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(.proxy("closed the connection during CONNECT"), channel: context.channel)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(.proxy(String("\(error)".prefix(120))), channel: context.channel)
    }

    private func fail(_ failure: HTTPFailure, channel: any Channel) {
        timer?.cancel()
        established.fail(failure)
        channel.close(promise: nil)
    }
}
