import Foundation
import NIOCore
import NIOEmbedded
import Testing
import TTTControl

@Suite("request lines: framing and envelopes")
struct RequestDecodingTests {
    private func decode(_ text: String) -> RequestLine {
        RPC.decodeRequest(Data(text.utf8), decoder: RPC.makeDecoder())
    }

    private func code(_ line: RequestLine) -> ControlErrorCode? {
        if case .failed(_, let error) = line { return error.kind }
        return nil
    }

    @Test("a request, a notification and blanks")
    func requests() {
        #expect(decode(#"{"jsonrpc":"2.0","id":1,"method":"status"}"#) == .request(id: .number(1), method: .status))
        #expect(decode(#"{"jsonrpc":"2.0","id":null,"method":"accounts.list"}"#) == .request(id: .null, method: .accountsList))
        #expect(decode(#"{"jsonrpc":"2.0","method":"status"}"#) == .request(id: nil, method: .status))
        #expect(decode(" \t ") == .blank)
        #expect(decode("") == .blank)
    }

    @Test("what is not a request: answered with id null, or with its id; a notification never")
    func failures() {
        let notJSON = decode("not json")
        #expect(code(notJSON) == .parseError)
        if case .failed(let id, _) = notJSON { #expect(id == .null) }
        let invalidUTF8 = RPC.decodeRequest(Data([0x7B, 0x22, 0xC3, 0x28, 0x22, 0x7D]), decoder: RPC.makeDecoder())
        #expect(code(invalidUTF8) == .parseError)
        #expect(decode("[1,2]") == .failed(id: .null, error: ControlError(.invalidRequest, "a request is a JSON object with \"jsonrpc\": \"2.0\" and a \"method\"")))
        #expect(code(decode(#"{"jsonrpc":"1.0","id":4,"method":"status"}"#)) == .invalidRequest)
        if case .failed(let id, _) = decode(#"{"jsonrpc":"1.0","id":4,"method":"status"}"#) { #expect(id == .number(4)) }
        // Missing "jsonrpc" without an id: still answered, with id null.
        if case .failed(let id, _) = decode(#"{"method":"status"}"#) { #expect(id == .null) }
        let unknown = decode(#"{"jsonrpc":"2.0","id":"x","method":"nope"}"#)
        #expect(code(unknown) == .methodNotFound)
        if case .failed(let id, _) = unknown { #expect(id == .string("x")) }
        if case .failed(let id, let error) = decode(#"{"jsonrpc":"2.0","method":"nope"}"#) {
            #expect(id == nil && error.kind == .methodNotFound)
        } else {
            Issue.record("an unknown method in a notification is not a failure")
        }
    }

    @Test("params: absent is nil, a wrong type is invalid_params naming the key")
    func params() throws {
        let decoder = RPC.makeDecoder()
        let absent = Data(#"{"jsonrpc":"2.0","id":1,"method":"accounts.list"}"#.utf8)
        #expect(try RPC.params(AccountsListParams.self, from: absent, decoder: decoder) == nil)
        let present = Data(#"{"jsonrpc":"2.0","id":1,"method":"accounts.import","params":{"lines":["a"],"first_line":3,"labels":[]}}"#.utf8)
        #expect(try RPC.params(AccountsImportParams.self, from: present, decoder: decoder)?.firstLine == 3)
        let wrong = Data(#"{"jsonrpc":"2.0","id":1,"method":"accounts.add","params":{"usernames":"alice"}}"#.utf8)
        do {
            _ = try RPC.params(AccountsAddParams.self, from: wrong, decoder: decoder)
            Issue.record("a string for usernames was accepted")
        } catch {
            #expect(error.kind == .invalidParams)
            #expect(error.message.hasPrefix("invalid params: params.usernames should be"))
        }
    }

    /// The frames a stream gives when it arrives `readSize` bytes at a time, then ends.
    private func frames(_ stream: [UInt8], readSize: Int, maxLength: Int) throws -> [String?] {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineFrameDecoder(maxLength: maxLength)))
        var frames: [RequestFrame] = []
        for start in stride(from: 0, to: stream.count, by: readSize) {
            try channel.writeInbound(ByteBuffer(bytes: stream[start..<min(start + readSize, stream.count)]))
            while let frame = try channel.readInbound(as: RequestFrame.self) { frames.append(frame) }
        }
        #expect(try channel.finish().isClean)
        return frames.map { frame in
            if case .line(let buffer) = frame { return String(buffer: buffer) }
            return nil
        }
    }

    @Test("lines are the same whichever way the stream is cut; a long line is one .tooLarge")
    func framing() throws {
        let stream = Array("ab\r\n\n0123456789\nxyz\r\n0123456789A\ntail".utf8)
        for readSize in 1...stream.count {
            #expect(try frames(stream, readSize: readSize, maxLength: 10) == ["ab", "", "0123456789", "xyz", nil], "reads of \(readSize)")
        }
        #expect(try frames(Array("0123456789ABC".utf8), readSize: 4, maxLength: 10) == [nil])
    }
}
