import Foundation
import FuzzSupport
import NIOCore
import NIOEmbedded
import TTTControl
import TTTDomain

/// The control socket as tttd reads it: a byte stream split into request lines by the frame
/// decoder, each line's envelope read, then the method's params and the names and labels in them
/// checked as the daemon checks them. The first byte of the input sets how the stream is cut into reads
/// (1–256 bytes), the second the longest line kept (64–4144 bytes); the rest is the stream.
/// The frames must be exactly the stream's lines, a line longer than the limit as `.tooLarge`.
@main enum FuzzControl {
    static func main() { runLibFuzzer(testOneInput) }
}

@_cdecl("LLVMFuzzerTestOneInput")
func testOneInput(_ bytes: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzControl(input(bytes, size))
    return 0
}

func fuzzControl(_ input: UnsafeBufferPointer<UInt8>) {
    guard input.count >= 2 else { return }
    let readSize = Int(input[0]) + 1
    let maxLength = 64 + Int(input[1]) * 16
    let stream = UnsafeBufferPointer(rebasing: input[2...])

    let channel = EmbeddedChannel(handler: ByteToMessageHandler(LineFrameDecoder(maxLength: maxLength)))
    var frames: [RequestFrame] = []
    do {
        for start in stride(from: 0, to: stream.count, by: readSize) {
            let read = stream[start..<min(start + readSize, stream.count)]
            try channel.writeInbound(ByteBuffer(bytes: read))
            while let frame = try channel.readInbound(as: RequestFrame.self) { frames.append(frame) }
        }
        // The end of the stream: an unterminated line is dropped, never a frame.
        let leftOvers = try channel.finish()
        precondition(leftOvers.isClean, "frames after EOF")
    } catch {
        preconditionFailure("the frame decoder threw \(error)")
    }
    checkFrames(frames, stream: stream, maxLength: maxLength)

    let decoder = RPC.makeDecoder()
    for case .line(let buffer) in frames {
        let line = Data(buffer.readableBytesView)
        guard case .request(_, let method) = RPC.decodeRequest(line, decoder: decoder) else { continue }
        readParams(method, line, decoder)
    }
}

/// What the frame decoder must have produced: one frame per `\n`-terminated line (its `\r` before
/// the `\n` dropped), `.tooLarge` for one over the limit, and `.tooLarge` for an unterminated tail
/// over the limit (a shorter one is dropped at EOF).
private func checkFrames(_ frames: [RequestFrame], stream: UnsafeBufferPointer<UInt8>, maxLength: Int) {
    var lines = stream.split(separator: 0x0A, omittingEmptySubsequences: false)
    let tail = lines.removeLast()
    var expected: [ArraySlice<UInt8>?] = lines.map { line in
        guard line.count <= maxLength else { return nil }
        return ArraySlice(line.last == 0x0D ? line.dropLast() : line)
    }
    if tail.count > maxLength { expected.append(nil) }
    precondition(frames.count == expected.count, "\(frames.count) frames for \(expected.count) lines")
    for (frame, line) in zip(frames, expected) {
        switch frame {
        case .line(let buffer): precondition(line.map { Array(buffer.readableBytesView) == Array($0) } ?? false)
        case .tooLarge: precondition(line == nil)
        }
    }
}

/// The method's params and what the daemon checks before it touches the database.
private func readParams(_ method: ControlMethod, _ line: Data, _ decoder: JSONDecoder) {
    func params<P: Decodable>(_ type: P.Type) -> P? { try? RPC.params(type, from: line, decoder: decoder) }
    var names: [String] = [], labels: [String] = []
    switch method {
    case .status, .pipelinesList: break
    case .accountsAdd: params(AccountsAddParams.self).map { names = $0.usernames; labels = $0.labels }
    case .accountsRemove: params(AccountsRemoveParams.self).map { names = $0.usernames }
    case .accountsList: _ = params(AccountsListParams.self)
    case .accountsImport:
        params(AccountsImportParams.self).map { imported in
            names = imported.lines.filter { AccountsImportParams.meaningful(Substring($0)) }
            labels = imported.labels
        }
    case .livesList: params(LivesListParams.self).map { names = $0.username.map { [$0] } ?? [] }
    case .livesShow: _ = params(LivesShowParams.self)
    case .follow: params(FollowParams.self).map { names = $0.usernames }
    case .pipelinesStop: _ = params(PipelinesStopParams.self)
    case .alertsList: _ = params(AlertsListParams.self)
    case .alertsAck: _ = params(AlertsAckParams.self)
    case .evidenceExport: _ = params(EvidenceExportParams.self)
    }
    for name in names {
        // A valid name is its own canonical form.
        if let username = try? Username(validating: name) {
            precondition((try? Username(validating: username.value)) == username)
        }
    }
    for label in labels { _ = Label.validate(label) }
}
