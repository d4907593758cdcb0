import CZlib
import NIOCore
import NIOHTTP1

/// A GET as bytes, ready for the socket: the request line and the headers as given (the caller
/// checked their values once, see `HTTPTikTokClient.isValidHeaderValue`). One buffer and one write
/// per request, where NIO's codec pipeline cost about a tenth of a check.
enum RequestEncoder {
    /// Nil when `target` could break the request line (a space or a control character in it: a
    /// room id comes from TikTok's own answers). `fields` are written as they are: see `HeaderBlock`.
    static func get(_ target: String, fields: HeaderBlock, extra: HeaderBlock? = nil, allocator: ByteBufferAllocator) -> ByteBuffer? {
        guard isValidTarget(target) else { return nil }
        var buffer = allocator.buffer(capacity: 16 + target.utf8.count + fields.bytes.count + (extra?.bytes.count ?? 0))
        buffer.writeStaticString("GET ")
        buffer.writeString(target)
        buffer.writeStaticString(" HTTP/1.1\r\n")
        buffer.writeBytes(fields.bytes)
        if let extra { buffer.writeBytes(extra.bytes) }
        buffer.writeStaticString("\r\n")
        return buffer
    }

    /// No byte up to the space, nor DEL: eight bytes at a time (a target is a few hundred bytes,
    /// on every request). Bytes from 0x80 (UTF-8) pass, as before.
    private static func isValidTarget(_ target: String) -> Bool {
        var target = target
        return target.withUTF8 { bytes in
            guard !bytes.isEmpty else { return false }
            let ones: UInt64 = 0x0101_0101_0101_0101
            let highs: UInt64 = 0x8080_8080_8080_8080
            let raw = UnsafeRawBufferPointer(bytes)
            var index = 0
            while index + 8 <= raw.count {
                let word = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                // Each byte below 0x80 minus 0x21 (or, xor-ed with 0x7F, minus 1) goes negative, setting
                // its high bit, only when it is below 0x21 (or is 0x7F); bytes from 0x80 are masked out.
                let del = word ^ (ones &* 0x7F)
                if ((word &- ones &* 0x21) | (del &- ones)) & ~word & highs != 0 { return false }
                index += 8
            }
            for byte in bytes[index...] where byte <= 0x20 || byte == 0x7F { return false }
            return true
        }
    }
}

/// Header fields encoded once (`Name: value\r\n` each), so that a request copies one block of bytes
/// instead of writing every name and value: most requests send the same fields. They are written as
/// given, so the caller builds them from values it has checked.
struct HeaderBlock: Sendable {
    let fields: HTTPHeaders
    let bytes: [UInt8]

    init(_ fields: HTTPHeaders) {
        self.fields = fields
        var bytes = [UInt8]()
        for (name, value) in fields {
            bytes += name.utf8
            bytes += ": ".utf8
            bytes += value.utf8
            bytes += "\r\n".utf8
        }
        self.bytes = bytes
    }
}

/// One HTTP/1.1 answer, read from the bytes as they arrive (RFC 9112): the status line and header
/// fields, then a body framed by `Transfer-Encoding: chunked`, `Content-Length`, or the end of the
/// connection; gzip and deflate bodies are inflated. Anything malformed is a `protocolError`, a body
/// over the limit (before or after inflating) `tooLarge`.
struct ResponseReader {
    private enum State {
        /// Looking for the blank line that ends the head; `scanned` bytes are known not to hold it.
        case head(scanned: Int)
        case fixed(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkEnd
        case trailers
        case untilClose
        case done
    }

    static let maxHeadBytes = 64 * 1024
    /// A chunk-size line (size and extensions) longer than this is not from a sane server.
    static let maxChunkLineBytes = 4 * 1024

    private let maxBodyBytes: Int
    private var state = State.head(scanned: 0)
    private var input: ByteBuffer?
    private var body: ByteBuffer?
    private var trailerBytes = 0
    private(set) var head: AnswerHead?
    private var contentEncoding: [String] = []
    private var reusable = true

    init(maxBodyBytes: Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    /// Takes the bytes that arrived; returns the answer once it is whole.
    mutating func read(_ bytes: inout ByteBuffer) throws(HTTPFailure) -> ResponseCollector.Answer? {
        if input == nil || input!.readableBytes == 0 {
            input = bytes
        } else {
            input!.writeBuffer(&bytes)
        }
        while true {
            switch try step() {
            case .needMore: return nil
            case .progress: continue
            case .complete: return try finish()
            }
        }
    }

    /// The connection ended: the answer, if its body was the rest of the connection.
    mutating func end() throws(HTTPFailure) -> ResponseCollector.Answer? {
        guard case .untilClose = state else { return nil }
        state = .done
        return try finish()
    }

    private enum Step { case needMore, progress, complete }

    private mutating func step() throws(HTTPFailure) -> Step {
        switch state {
        case .head(let scanned):
            let view = input!.readableBytesView
            guard let end = Self.findCRLF(in: view, from: max(0, scanned - 3), twice: true) else {
                if view.count > Self.maxHeadBytes { throw .protocolError("answer head over \(Self.maxHeadBytes / 1024) KiB") }
                state = .head(scanned: view.count)
                return .needMore
            }
            let parsed = try Self.parseHead(view[view.startIndex..<(view.startIndex + end + 2)])
            input!.moveReaderIndex(forwardBy: end + 4)
            let code = parsed.head.code
            if code >= 100 && code < 200 {
                // 101 would switch protocols, which tttd never asks for; 100 and 103 precede the answer.
                if code == 101 { throw .protocolError("unexpected 101 Switching Protocols") }
                state = .head(scanned: 0)
                return .progress
            }
            head = parsed.head
            // HTTP/1.1 keeps the connection unless told to close it; HTTP/1.0 only when asked to keep it.
            reusable = parsed.head.version.minor == 1 ? !parsed.close : parsed.keepAlive
            contentEncoding = parsed.contentEncoding
            state = try framing(parsed)
            return .progress
        case .fixed(let remaining):
            guard let left = try takeBody(remaining) else { return .needMore }
            state = left == 0 ? .done : .fixed(remaining: left)
            return left == 0 ? .complete : .needMore
        case .chunkSize:
            guard let line = try takeLine(limit: Self.maxChunkLineBytes, what: "chunk size") else { return .needMore }
            let size = try Self.chunkSize(line)
            if size > maxBodyBytes - (body?.readableBytes ?? 0) { throw .tooLarge }
            state = size == 0 ? .trailers : .chunkData(remaining: size)
            return .progress
        case .chunkData(let remaining):
            guard let left = try takeBody(remaining) else { return .needMore }
            state = left == 0 ? .chunkEnd : .chunkData(remaining: left)
            return .progress
        case .chunkEnd:
            guard input!.readableBytes >= 2 else { return .needMore }
            guard input!.readInteger(as: UInt16.self) == 0x0D0A else { throw .protocolError("chunk not followed by CRLF") }
            state = .chunkSize
            return .progress
        case .trailers:
            guard let line = try takeLine(limit: Self.maxHeadBytes, what: "trailer") else { return .needMore }
            trailerBytes += line.count + 2
            if trailerBytes > Self.maxHeadBytes { throw .protocolError("trailers over \(Self.maxHeadBytes / 1024) KiB") }
            if line.isEmpty {
                state = .done
                return .complete
            }
            return .progress
        case .untilClose:
            guard input!.readableBytes > 0 else { return .needMore }
            try append(input!.readableBytes)
            return .needMore
        case .done:
            return .complete
        }
    }

    /// How the body is delimited (RFC 9112, 6.3).
    private mutating func framing(_ parsed: ParsedHead) throws(HTTPFailure) -> State {
        if parsed.head.code == 204 || parsed.head.code == 304 { return .done }
        if parsed.transferCodings > 0 {
            // A Content-Length beside it is ignored, and the connection cannot be trusted after.
            if parsed.contentLengthField { reusable = false }
            if parsed.lastCodingChunked { return .chunkSize }
            reusable = false
            return .untilClose
        }
        switch parsed.contentLength {
        case .length(let length):
            if length > maxBodyBytes { throw .tooLarge }
            return length == 0 ? .done : .fixed(remaining: length)
        case .bad:
            throw .protocolError("bad Content-Length")
        case .absent:
            reusable = false
            return .untilClose
        }
    }

    /// Moves up to `remaining` bytes of the body out of the input; returns how many are still to
    /// come, nil when the input had none.
    private mutating func takeBody(_ remaining: Int) throws(HTTPFailure) -> Int? {
        guard input!.readableBytes > 0 else { return nil }
        let taken = min(remaining, input!.readableBytes)
        try append(taken)
        return remaining - taken
    }

    private mutating func append(_ count: Int) throws(HTTPFailure) {
        var part = input!.readSlice(length: count)!
        if body == nil {
            body = part
        } else {
            body!.writeBuffer(&part)
        }
        if body!.readableBytes > maxBodyBytes { throw .tooLarge }
    }

    /// The next CRLF-terminated line without its CRLF, or nil until it is whole.
    private mutating func takeLine(limit: Int, what: String) throws(HTTPFailure) -> ByteBufferView? {
        let view = input!.readableBytesView
        guard let end = Self.findCRLF(in: view, from: 0) else {
            if view.count > limit { throw .protocolError("\(what) line too long") }
            return nil
        }
        let line = view[view.startIndex..<(view.startIndex + end)]
        input!.moveReaderIndex(forwardBy: end + 2)
        return line
    }

    private mutating func finish() throws(HTTPFailure) -> ResponseCollector.Answer {
        guard let head else { throw .protocolError("no answer head") }
        // Bytes after the answer were not asked for: the connection is not reused.
        if let input, input.readableBytes > 0 { reusable = false }
        var answer = body ?? ByteBuffer()
        switch contentEncoding {
        case [], ["identity"]: break
        // An empty body stays empty whatever its label: a front end that stamps `gzip` on the empty
        // answer it blocks with must still read as that block.
        case ["gzip"], ["x-gzip"], ["deflate"]: if answer.readableBytes > 0 { answer = try Inflater.inflate(answer, limit: maxBodyBytes) }
        case let other: throw .protocolError("content encoding \(other.joined(separator: ", ")) not supported")
        }
        return ResponseCollector.Answer(head: head, body: answer, reusable: reusable)
    }

    // MARK: The head

    /// The offset of the first CRLF in `view` at or after `from` (with `twice`, of CRLF CRLF: the end of a head).
    private static func findCRLF(in view: ByteBufferView, from: Int, twice: Bool = false) -> Int? {
        view.withUnsafeBytes { bytes -> Int? in
            let length = twice ? 4 : 2
            var index = from
            while index + length <= bytes.count {
                if bytes[index] == 0x0D, bytes[index + 1] == 0x0A, !twice || (bytes[index + 2] == 0x0D && bytes[index + 3] == 0x0A) {
                    return index
                }
                index += 1
            }
            return nil
        }
    }

    /// A head, and what the fields that frame its body say, read from the bytes as they come (no
    /// look-up by name after, and no string made for a field that is only compared).
    private struct ParsedHead {
        enum ContentLength { case absent, length(Int), bad }

        var head: AnswerHead
        /// Every item of every Content-Length field: one number, however often repeated.
        var contentLength = ContentLength.absent
        /// A Content-Length field came, even an empty one.
        var contentLengthField = false
        /// The first Content-Length item, which the others must repeat byte for byte.
        var firstLength: Range<Int>?
        var transferCodings = 0
        var lastCodingChunked = false
        /// Lowercased; made only when the field comes (TikTok's API answers do not compress).
        var contentEncoding: [String] = []
        var close = false
        var keepAlive = false

        /// One Content-Length item: at most 18 digits, and the same bytes as the first one.
        mutating func addLength(_ item: Range<Int>, in bytes: UnsafeRawBufferPointer) {
            if case .bad = contentLength { return }
            guard item.count <= 18, bytes[item].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return contentLength = .bad }
            guard let first = firstLength else {
                firstLength = item
                contentLength = .length(bytes[item].reduce(0) { $0 * 10 + Int($1 - 0x30) })
                return
            }
            if !bytes[first].elementsEqual(bytes[item]) { contentLength = .bad }
        }
    }

    /// The status line and header fields, each ended by CRLF (the blank line that ends the head excluded).
    private static func parseHead(_ view: ByteBufferView) throws(HTTPFailure) -> ParsedHead {
        try view.withUnsafeBytes { bytes in Result { () throws(HTTPFailure) in try parseHead(bytes) } }.get()
    }

    private static func parseHead(_ bytes: UnsafeRawBufferPointer) throws(HTTPFailure) -> ParsedHead {
        var lineStart = 0
        /// The next line without its CRLF.
        func nextLine() throws(HTTPFailure) -> Range<Int>? {
            guard lineStart < bytes.count else { return nil }
            var index = lineStart
            while bytes[index] != 0x0A { index += 1 }  // the head ends with CRLF: there is one
            guard index > lineStart, bytes[index - 1] == 0x0D else { throw .protocolError("line not ended by CRLF") }
            defer { lineStart = index + 1 }
            return lineStart..<(index - 1)
        }
        guard let statusLine = try nextLine() else { throw .protocolError("bad status line") }
        let status = try Self.statusLine(UnsafeRawBufferPointer(rebasing: bytes[statusLine]))
        var parsed = ParsedHead(head: AnswerHead(code: status.code, version: status.version))
        func string(_ range: Range<Int>) -> String { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self) }
        while let line = try nextLine() {
            guard !line.isEmpty else { throw .protocolError("empty header line") }
            // Obsolete line folding (RFC 9112, 5.2): refused rather than guessed at.
            if bytes[line.lowerBound] == 0x20 || bytes[line.lowerBound] == 0x09 { throw .protocolError("folded header line") }
            var colon = line.lowerBound
            while colon < line.upperBound, bytes[colon] != 0x3A {
                guard isTokenByte(bytes[colon]) else { throw .protocolError("bad header name") }
                colon += 1
            }
            guard colon < line.upperBound, colon > line.lowerBound else { throw .protocolError("bad header name") }
            var valueStart = colon + 1
            var valueEnd = line.upperBound
            while valueStart < valueEnd, bytes[valueStart] == 0x20 || bytes[valueStart] == 0x09 { valueStart += 1 }
            while valueEnd > valueStart, bytes[valueEnd - 1] == 0x20 || bytes[valueEnd - 1] == 0x09 { valueEnd -= 1 }
            for index in valueStart..<valueEnd where bytes[index] == 0x00 || bytes[index] == 0x0D {
                throw .protocolError("bad header value")
            }
            let name = UnsafeRawBufferPointer(rebasing: bytes[line.lowerBound..<colon])
            let value = valueStart..<valueEnd
            if equalsIgnoringCase(name, "content-length") {
                parsed.contentLengthField = true
                forEachItem(of: value, in: bytes) { item in parsed.addLength(item, in: bytes) }
            } else if equalsIgnoringCase(name, "transfer-encoding") {
                forEachItem(of: value, in: bytes) { item in
                    parsed.transferCodings += 1
                    parsed.lastCodingChunked = equalsIgnoringCase(UnsafeRawBufferPointer(rebasing: bytes[item]), "chunked")
                }
            } else if equalsIgnoringCase(name, "content-encoding") {
                forEachItem(of: value, in: bytes) { item in
                    parsed.contentEncoding.append(String(decoding: bytes[item].map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }, as: UTF8.self))
                }
            } else if equalsIgnoringCase(name, "connection") {
                forEachItem(of: value, in: bytes) { item in
                    let token = UnsafeRawBufferPointer(rebasing: bytes[item])
                    if equalsIgnoringCase(token, "close") { parsed.close = true }
                    if equalsIgnoringCase(token, "keep-alive") { parsed.keepAlive = true }
                }
            } else if equalsIgnoringCase(name, "content-type") {
                if parsed.head.contentType == nil { parsed.head.contentType = string(value) }
            } else if equalsIgnoringCase(name, "retry-after") {
                if parsed.head.retryAfter == nil { parsed.head.retryAfter = string(value) }
            } else if equalsIgnoringCase(name, "location") {
                if parsed.head.location == nil { parsed.head.location = string(value) }
            }
        }
        return parsed
    }

    /// Each comma-separated item of the field value at `range`, without the spaces and tabs around it;
    /// empty items are skipped (RFC 9110, 5.6.1).
    private static func forEachItem(of range: Range<Int>, in bytes: UnsafeRawBufferPointer, _ body: (Range<Int>) -> Void) {
        var start = range.lowerBound
        while start < range.upperBound {
            var end = start
            while end < range.upperBound, bytes[end] != 0x2C { end += 1 }
            var low = start, high = end
            while low < high, bytes[low] == 0x20 || bytes[low] == 0x09 { low += 1 }
            while high > low, bytes[high - 1] == 0x20 || bytes[high - 1] == 0x09 { high -= 1 }
            if low < high { body(low..<high) }
            start = end + 1
        }
    }

    /// `name` is `lowercased`, ASCII letters in any case.
    private static func equalsIgnoringCase(_ name: UnsafeRawBufferPointer, _ lowercased: StaticString) -> Bool {
        guard name.count == lowercased.utf8CodeUnitCount else { return false }
        let expected = UnsafeRawBufferPointer(start: lowercased.utf8Start, count: lowercased.utf8CodeUnitCount)
        for index in 0..<name.count where name[index] | 0x20 != expected[index] { return false }
        return true
    }

    private static func statusLine(_ line: UnsafeRawBufferPointer) throws(HTTPFailure) -> (version: HTTPVersion, code: Int) {
        // "HTTP/1.x NNN[ reason]"
        guard line.count >= 12, line[0..<7].elementsEqual("HTTP/1.".utf8), line[7] == 0x30 || line[7] == 0x31,
              line[8] == 0x20, line[9..<12].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), line.count == 12 || line[12] == 0x20
        else { throw .protocolError("bad status line") }
        let code = line[9..<12].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        guard code >= 100 else { throw .protocolError("bad status line") }
        return (HTTPVersion(major: 1, minor: Int(line[7] - 0x30)), code)
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"): true
        default: false
        }
    }

    /// `1a3f[;extension]`: hexadecimal, extensions ignored.
    private static func chunkSize(_ line: ByteBufferView) throws(HTTPFailure) -> Int {
        var size = 0
        var digits = 0
        for byte in line {
            let value: Int
            switch byte {
            case 0x30...0x39: value = Int(byte - 0x30)
            case 0x41...0x46: value = Int(byte - 0x41 + 10)
            case 0x61...0x66: value = Int(byte - 0x61 + 10)
            case 0x3B, 0x20, 0x09:
                guard digits > 0 else { throw .protocolError("bad chunk size") }
                return size
            default: throw .protocolError("bad chunk size")
            }
            digits += 1
            // Past 15 hex digits a size overflows; far before that it is over any limit.
            guard digits <= 15 else { throw .tooLarge }
            size = size * 16 + value
        }
        guard digits > 0 else { throw .protocolError("bad chunk size") }
        return size
    }
}

/// What tttd reads of an answer's head: the status, the version, and the first of each field it
/// uses. The other fields are checked and dropped, not copied.
struct AnswerHead: Equatable {
    var code: Int
    var version: HTTPVersion
    var contentType: String?
    var retryAfter: String?
    var location: String?
}

/// gzip and zlib-wrapped deflate, inflated under a limit: a small answer that inflates past it
/// (a "zip bomb") stops as soon as it does.
enum Inflater {
    static func inflate(_ compressed: ByteBuffer, limit: Int) throws(HTTPFailure) -> ByteBuffer {
        var stream = z_stream()
        guard czlib_inflate_init(&stream) == Z_OK else { throw .protocolError("cannot inflate") }
        defer { inflateEnd(&stream) }
        var output = ByteBuffer()
        output.reserveCapacity(min(limit + 1, max(4096, compressed.readableBytes * 6)))
        enum Outcome { case done, truncated, corrupt, tooLarge }
        let outcome = compressed.withUnsafeReadableBytes { input -> Outcome in
            stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
            stream.avail_in = uInt(input.count)
            while true {
                var status = Z_OK
                output.writeWithUnsafeMutableBytes(minimumWritableBytes: 4096) { out in
                    stream.next_out = out.bindMemory(to: Bytef.self).baseAddress
                    stream.avail_out = uInt(out.count)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                if output.readableBytes > limit { return .tooLarge }
                switch status {
                case Z_STREAM_END: return .done
                case Z_OK: continue
                case Z_BUF_ERROR: if stream.avail_in == 0 { return .truncated } else { continue }
                default: return .corrupt
                }
            }
        }
        switch outcome {
        case .done: return output
        case .truncated: throw .protocolError("compressed answer cut short")
        case .corrupt: throw .protocolError("compressed answer corrupt")
        case .tooLarge: throw .tooLarge
        }
    }
}
