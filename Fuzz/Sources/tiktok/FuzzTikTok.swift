import Foundation
import FuzzSupport
import NIOCore
@testable import TTTTikTok

/// TikTok's answers as detection reads them: the input is a response body, given to each endpoint's
/// parser as a 200 answer (and as `stream_data`, the JSON inside a JSON string); its first line is
/// also a 429's `Retry-After`. The input is also read as the bytes of an HTTP/1.1 answer, in two
/// reads cut where its first byte says, then the connection's end.
@main enum FuzzTikTok {
    static func main() { runLibFuzzer(testOneInput) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = input(bytes, size)
    fuzzTikTok(bytes)
    fuzzHTTP(bytes)
    return 0
}

func fuzzTikTok(_ input: UnsafeBufferPointer<UInt8>) {
    let body = Data(input)
    let ok = ResponseParser.HTTPAnswer(status: 200, contentType: "application/json", retryAfter: nil, body: body)
    if case .live(let room) = ResponseParser.accountLookup(ok) { precondition(!room.roomID.isEmpty) }
    _ = ResponseParser.aliveCheck(ok)
    _ = ResponseParser.roomInfo(ok, roomID: "7390000000000000001")
    _ = ResponseParser.streamURLs(fromStreamData: String(decoding: body, as: UTF8.self))
    let firstLine = String(decoding: body.prefix { $0 != 0x0A }, as: UTF8.self)
    let limited = ResponseParser.HTTPAnswer(status: 429, contentType: nil, retryAfter: firstLine, body: body)
    _ = ResponseParser.accountLookup(limited)
}

func fuzzHTTP(_ input: UnsafeBufferPointer<UInt8>) {
    let limit = 64 * 1024
    let cut = input.isEmpty ? 0 : Int(input[0]) % (input.count + 1)
    var reader = ResponseReader(maxBodyBytes: limit)
    do {
        var answer: ResponseCollector.Answer?
        for part in [input[..<cut], input[cut...]] where answer == nil {
            var buffer = ByteBuffer(bytes: part)
            answer = try reader.read(&buffer)
        }
        if answer == nil { answer = try reader.end() }
        if let answer { precondition(answer.body.readableBytes <= limit) }
    } catch {
        // Refused: what matters is that it ended, within the limits.
    }
}
