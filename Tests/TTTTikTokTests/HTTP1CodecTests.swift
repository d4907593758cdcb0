import Foundation
import NIOCore
import NIOHTTP1
import Testing
@testable import TTTTikTok

@Suite("HTTP/1.1 answers read from bytes")
struct HTTP1CodecTests {
    static let limit = 1024

    /// Every answer is read twice — all its bytes at once, then one byte at a time — and both
    /// readings must agree: a server's writes may be split anywhere.
    func read(_ bytes: [UInt8], limit: Int = Self.limit, closeAtEnd: Bool = false) throws -> ResponseCollector.Answer? {
        func once(_ parts: [[UInt8]]) throws -> ResponseCollector.Answer? {
            var reader = ResponseReader(maxBodyBytes: limit)
            for part in parts {
                var buffer = ByteBuffer(bytes: part)
                if let answer = try reader.read(&buffer) { return answer }
            }
            return closeAtEnd ? try reader.end() : nil
        }
        let whole = try once([bytes])
        let split = try once(bytes.map { [$0] })
        #expect(whole?.head == split?.head)
        #expect(whole?.body == split?.body)
        #expect(whole?.reusable == split?.reusable)
        return whole
    }

    func read(_ text: String, limit: Int = Self.limit, closeAtEnd: Bool = false) throws -> ResponseCollector.Answer? {
        try read(Array(text.utf8), limit: limit, closeAtEnd: closeAtEnd)
    }

    func failure(_ text: String, limit: Int = Self.limit) -> HTTPFailure? {
        failure(Array(text.utf8), limit: limit)
    }

    /// The failure, which must be the same whether the bytes come at once or one by one.
    func failure(_ bytes: [UInt8], limit: Int = Self.limit) -> HTTPFailure? {
        func once(_ parts: [[UInt8]]) -> HTTPFailure? {
            var reader = ResponseReader(maxBodyBytes: limit)
            do {
                for part in parts {
                    var buffer = ByteBuffer(bytes: part)
                    if try reader.read(&buffer) != nil { return nil }
                }
                _ = try reader.end()
                return nil
            } catch {
                return error
            }
        }
        let whole = once([bytes])
        #expect(whole == once(bytes.map { [$0] }))
        return whole
    }

    func isProtocolError(_ failure: HTTPFailure?) -> Bool {
        if case .protocolError? = failure { return true }
        return false
    }

    @Test("Content-Length: the body, the fields tttd reads, a reusable connection")
    func contentLength() throws {
        let answer = try #require(try read("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\nX-Empty:\r\nRetry-After:\r\n\r\n{\"ok\":true}"))
        #expect(answer.head == AnswerHead(code: 200, version: .http1_1, contentType: "application/json", retryAfter: ""))
        #expect(String(buffer: answer.body) == "{\"ok\":true}")
        #expect(answer.reusable)
    }

    @Test("no answer until the last byte of the body came")
    func incomplete() throws {
        #expect(try read("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcd") == nil)
        #expect(try read("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n") == nil)
    }

    @Test("chunked, with extensions and trailers")
    func chunked() throws {
        let answer = try #require(try read(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-Trailer: 1\r\n\r\n"))
        #expect(String(buffer: answer.body) == "hello, world!!!")
        #expect(answer.reusable)
    }

    @Test("a body delimited by the end of the connection: whole only at the end, never reused")
    func untilClose() throws {
        #expect(try read("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>") == nil)
        let answer = try #require(try read("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>", closeAtEnd: true))
        #expect(String(buffer: answer.body) == "<html>")
        #expect(!answer.reusable)
    }

    @Test("interim 1xx answers are skipped; 204 and 304 have no body")
    func interimAndEmpty() throws {
        let answer = try #require(try read("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        #expect(answer.head.code == 200)
        #expect(String(buffer: answer.body) == "ok")
        #expect(try read("HTTP/1.1 204 No Content\r\n\r\n")?.body.readableBytes == 0)
        #expect(try read("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")?.reusable == true)
        #expect(isProtocolError(failure("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")))
    }

    @Test("keep-alive: HTTP/1.1 unless Connection: close, HTTP/1.0 only when asked; extra bytes end it")
    func keepAlive() throws {
        #expect(try read("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")?.reusable == false)
        #expect(try read("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")?.reusable == false)
        #expect(try read("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")?.reusable == true)
        // Bytes after the answer in the same read (later ones reach a collector with no exchange in
        // flight, which closes the connection).
        var reader = ResponseReader(maxBodyBytes: Self.limit)
        var extra = ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200")
        #expect(try reader.read(&extra)?.reusable == false)
        // Both framings: chunked wins, and the connection is not trusted after.
        let both = try #require(try read("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"))
        #expect(String(buffer: both.body) == "ok")
        #expect(!both.reusable)
    }

    @Test("malformed heads are protocol errors", arguments: [
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\n: no name\r\n\r\n",
        "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\n\r\n",
        "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nxyz",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n;x\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokX\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\nxx",
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
    ])
    func malformed(_ text: String) {
        #expect(isProtocolError(failure(text)), "\(text.debugDescription)")
    }

    @Test("equal repeated Content-Lengths are one length")
    func repeatedLength() throws {
        #expect(try read("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok").map { String(buffer: $0.body) } == "ok")
    }

    @Test("a head that never ends is refused past 64 KiB, not buffered for ever")
    func endlessHead() {
        let head = "HTTP/1.1 200 OK\r\n" + String(repeating: "X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", count: 900)
        var reader = ResponseReader(maxBodyBytes: Self.limit)
        var buffer = ByteBuffer(string: head)
        #expect(throws: HTTPFailure.self) { _ = try reader.read(&buffer) }
    }

    @Test("bodies over the limit: refused by their announced length, or as soon as they pass it")
    func limits() throws {
        #expect(failure("HTTP/1.1 200 OK\r\nContent-Length: 1025\r\n\r\n") == .tooLarge)
        #expect(failure("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n") != nil)
        #expect(failure("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n401\r\n") == .tooLarge)
        #expect(failure("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\n") == .tooLarge)
        let twoChunks = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n200\r\n" + String(repeating: "a", count: 512)
            + "\r\n201\r\n"
        #expect(failure(twoChunks) == .tooLarge)
        #expect(failure("HTTP/1.1 200 OK\r\n\r\n" + String(repeating: "a", count: 1025)) == .tooLarge)
        #expect(try read("HTTP/1.1 200 OK\r\nContent-Length: 1024\r\n\r\n" + String(repeating: "a", count: 1024))?.body.readableBytes == 1024)
    }

    @Test("gzip and deflate bodies are inflated, under the same limit")
    func compressed() async throws {
        let json = Data(#"{"data":{"user":{"roomId":"7390000000000000001"}}}"#.utf8)
        for (encoding, body) in [("gzip", try await gzipped(json)), ("deflate", try await zlibCompressed(json))] {
            let answer = try #require(try read(Array("HTTP/1.1 200 OK\r\nContent-Encoding: \(encoding)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body))
            #expect(Array(answer.body.readableBytesView) == Array(json), "\(encoding)")
        }
        let bomb = try await gzipped(Data(repeating: 0x20, count: 64 * 1024))
        #expect(failure(Array("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: \(bomb.count)\r\n\r\n".utf8) + bomb) == .tooLarge)
        let cut = try await gzipped(json).dropLast(12)
        #expect(isProtocolError(failure(Array("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: \(cut.count)\r\n\r\n".utf8) + cut)))
    }

    @Test("a request is its line and headers, byte for byte; a target that could break the line is refused")
    func request() throws {
        let headers = HeaderBlock(["Host": "www.tiktok.com", "Accept": "*/*"])
        let request = try #require(RequestEncoder.get("/api-live/user/room/?uniqueId=a_b", fields: headers, allocator: .init()))
        #expect(String(buffer: request) == "GET /api-live/user/room/?uniqueId=a_b HTTP/1.1\r\nHost: www.tiktok.com\r\nAccept: */*\r\n\r\n")
        let proxied = try #require(RequestEncoder.get("http://www.tiktok.com/a", fields: headers,
                                                      extra: HeaderBlock(["Proxy-Authorization": "Basic dTpw"]), allocator: .init()))
        #expect(String(buffer: proxied) == "GET http://www.tiktok.com/a HTTP/1.1\r\nHost: www.tiktok.com\r\nAccept: */*\r\nProxy-Authorization: Basic dTpw\r\n\r\n")
        for bad in ["", "/a b", "/a\r\nX: y", "/a\u{7F}", "/a\tb"] {
            #expect(RequestEncoder.get(bad, fields: headers, allocator: .init()) == nil, "\(bad.debugDescription)")
        }
        // Targets are checked eight bytes at a time: a bad byte anywhere in a long one, and every
        // printable byte (and UTF-8) allowed.
        let printable = String(decoding: Array(0x21...0x7E), as: UTF8.self) + "/é"
        #expect(RequestEncoder.get("/" + printable + printable, fields: headers, allocator: .init()) != nil)
        for offset in 0..<24 {
            for bad: UInt8 in [0x00, 0x09, 0x0A, 0x1F, 0x20, 0x7F] {
                var bytes = Array("/api-live/user/room/?uniqueId=abc".utf8)
                bytes[1 + offset] = bad
                #expect(RequestEncoder.get(String(decoding: bytes, as: UTF8.self), fields: headers, allocator: .init()) == nil,
                        "byte \(bad) at \(1 + offset)")
            }
        }
    }

    @Test("an empty body labelled gzip, x-gzip or deflate is an empty body, not a broken compressed one")
    func emptyCompressed() throws {
        // A front end that blocks may stamp its usual Content-Encoding on the empty answer it sends:
        // it must still read as that empty answer.
        for encoding in ["gzip", "x-gzip", "deflate"] {
            let answer = try #require(try read("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Encoding: \(encoding)\r\n\r\n"), "\(encoding)")
            #expect(answer.head.code == 200)
            #expect(answer.body.readableBytes == 0, "\(encoding)")
            #expect(answer.reusable, "\(encoding)")
        }
        let chunked = try #require(try read("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n\r\n0\r\n\r\n"))
        #expect(chunked.body.readableBytes == 0)
        // A body that is there is still inflated, and refused when it is not gzip.
        #expect(isProtocolError(failure("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Encoding: gzip\r\n\r\nx")))
    }
}

/// `bytes` zlib-wrapped (HTTP's "deflate"), by Python's zlib.
func zlibCompressed(_ bytes: Data) async throws -> Data {
    try await run("/usr/bin/env", ["python3", "-c", "import sys, zlib; sys.stdout.buffer.write(zlib.compress(sys.stdin.buffer.read()))"], input: bytes)
}
