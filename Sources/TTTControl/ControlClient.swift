import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum ControlClientError: Error, Sendable, CustomStringConvertible {
    /// The daemon cannot be reached: no socket, nobody listening, or no permission.
    case unreachable(path: String, reason: String)
    /// The daemon answered with an error.
    case remote(ControlError)
    /// The daemon's answer could not be understood, or the connection broke mid-answer.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case let .unreachable(path, reason): return "tttd is not reachable at \(path): \(reason)"
        case let .remote(error): return error.message
        case let .protocolViolation(reason): return "unexpected answer from tttd: \(reason)"
        }
    }
}

/// A blocking client for the control socket: one connection, requests answered in order.
/// tttctl makes one or a few calls and exits, so a plain socket keeps it small and quick to start.
public final class ControlClient {
    public static let defaultSocketPath = "/run/tttd/control.sock"

    public let path: String
    private let fd: Int32
    private var buffer = [UInt8]()
    private var nextID: Int64 = 1
    /// How long to wait for an answer; nil waits for ever (`follow`). A stalled daemon is an error,
    /// not a hung command.
    public var replyTimeout: Duration? = .seconds(60)
    private let encoder = RPC.makeEncoder()
    private let decoder = RPC.makeDecoder()

    public init(path: String) throws(ControlClientError) {
        self.path = path
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else {
            throw .unreachable(path: path, reason: "the socket path is longer than \(capacity - 1) bytes")
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .unreachable(path: path, reason: String(cString: strerror(errno))) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path.utf8)
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if result != 0 {
            let code = errno
            close(fd)
            throw .unreachable(path: path, reason: Self.explain(code))
        }
        self.fd = fd
    }

    deinit { close(fd) }

    private static func explain(_ code: Int32) -> String {
        switch code {
        case ENOENT: return "no socket there (is tttd running? `systemctl status tttd`)"
        case ECONNREFUSED: return "nothing listens on the socket (is tttd running? `systemctl status tttd`)"
        case EACCES, EPERM: return "permission denied (join the tttd group: `sudo usermod -aG tttd $USER`, then log in again)"
        default: return String(cString: strerror(code))
        }
    }

    /// Sends one request and waits for its answer.
    public func call<Params: Encodable, Result: Decodable>(
        _ method: String, _ params: Params, as: Result.Type = Result.self
    ) throws(ControlClientError) -> Result {
        try send(method, params)
        let line = try readLine()
        return try decodeReply(line, as: Result.self)
    }

    public func call<Result: Decodable>(_ method: String, as: Result.Type = Result.self) throws(ControlClientError) -> Result {
        try call(method, NoParams(), as: Result.self)
    }

    public func send<Params: Encodable>(_ method: String, _ params: Params) throws(ControlClientError) {
        let request = RPCRequest(id: .number(nextID), method: method, params: params)
        nextID += 1
        var data: Data
        do { data = try encoder.encode(request) } catch {
            throw .protocolViolation("cannot encode the request: \(error)")
        }
        data.append(UInt8(ascii: "\n"))
        try writeAll(data)
    }

    /// Reads the next line the daemon sends (a reply or a notification), without its newline.
    public func readLine() throws(ControlClientError) -> Data {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(buffer[..<newline])
                buffer.removeSubrange(...newline)
                return line
            }
            if let replyTimeout {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let milliseconds = Int32(replyTimeout.components.seconds * 1000)
                let ready = poll(&poller, 1, milliseconds)
                if ready < 0 && errno == EINTR { continue }
                if ready == 0 { throw .protocolViolation("no answer from tttd within \(replyTimeout.components.seconds) s") }
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .protocolViolation("read failed: \(String(cString: strerror(errno)))")
            }
            if count == 0 { throw .protocolViolation("tttd closed the connection") }
            buffer.append(contentsOf: chunk[..<count])
        }
    }

    public func decodeReply<Result: Decodable>(_ line: Data, as: Result.Type) throws(ControlClientError) -> Result {
        let envelope: RPCReplyEnvelope
        do { envelope = try decoder.decode(RPCReplyEnvelope.self, from: line) } catch {
            throw .protocolViolation("not JSON-RPC: \(String(decoding: line.prefix(200), as: UTF8.self))")
        }
        if let error = envelope.error { throw .remote(error) }
        do { return try decoder.decode(RPCResultEnvelope<Result>.self, from: line).result } catch {
            throw .protocolViolation("cannot read the result: \(error)")
        }
    }

    private func writeAll(_ data: Data) throws(ControlClientError) {
        let failure: Int32? = data.withUnsafeBytes { raw -> Int32? in
            var offset = 0
            while offset < raw.count {
                let written = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if written < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                offset += written
            }
            return nil
        }
        if let code = failure {
            throw .protocolViolation("write failed: \(String(cString: strerror(code)))")
        }
    }
}
