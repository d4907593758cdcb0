import NIOCore

/// One request line, or the fact that a line was too long to keep.
public enum RequestFrame: Sendable {
    case line(ByteBuffer)
    case tooLarge
}

/// Splits the stream on `\n` like NIO's LineBasedFrameDecoder, but never buffers more than `maxLength`
/// bytes: a longer line is reported once as `.tooLarge` and skipped up to its newline, so a client
/// that sends 200 KB without a newline costs 64 KiB of memory and still gets an answer.
public struct LineFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = RequestFrame

    public let maxLength: Int
    private var discarding = false
    private var scanned = 0

    public init(maxLength: Int) { self.maxLength = maxLength }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        let view = buffer.readableBytesView
        let start = view.startIndex + scanned
        if let newline = view[start...].firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - view.startIndex
            scanned = 0
            if discarding {
                discarding = false
                buffer.moveReaderIndex(forwardBy: length + 1)
                return .continue
            }
            if length > maxLength {
                buffer.moveReaderIndex(forwardBy: length + 1)
                context.fireChannelRead(wrapInboundOut(.tooLarge))
                return .continue
            }
            var line = buffer.readSlice(length: length)!
            buffer.moveReaderIndex(forwardBy: 1)
            if line.readableBytesView.last == UInt8(ascii: "\r") { line.moveWriterIndex(to: line.writerIndex - 1) }
            context.fireChannelRead(wrapInboundOut(.line(line)))
            return .continue
        }
        if discarding {
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            scanned = 0
        } else if buffer.readableBytes > maxLength {
            discarding = true
            buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
            scanned = 0
            context.fireChannelRead(wrapInboundOut(.tooLarge))
        } else {
            scanned = buffer.readableBytes
        }
        return .needMoreData
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        // A half line before EOF is not a request (the client gave up mid-way): drop it.
        buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
        return .needMoreData
    }
}
