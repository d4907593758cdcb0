import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// MARK: - A raw Unix-socket client

/// A bare client for the control socket: bytes in, lines out, no JSON-RPC of its own, so tests can
/// send what tttctl never would. Blocking calls run on a background queue, never on Swift's pool.
/// One task uses a client at a time (each call is awaited before the next).
final class RawClient: @unchecked Sendable {
    enum Read: Sendable, CustomStringConvertible {
        case line(String)
        /// The daemon closed the connection (EOF or reset) before a whole line came.
        case closed
        case timeout

        var description: String {
            switch self {
            case .line(let text): return "line \(text.prefix(300))"
            case .closed: return "closed"
            case .timeout: return "timeout"
            }
        }

        var text: String? { if case .line(let text) = self { return text } else { return nil } }
        var isClosed: Bool { if case .closed = self { return true } else { return false } }
    }

    let path: String
    let fd: Int32
    private var buffer = [UInt8]()
    private var isOpen = true

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(fd)
            throw HarnessError("connect \(path): \(reason)")
        }
    }

    deinit { close() }

    func close() {
        if isOpen { Glibc.close(fd); isOpen = false }
    }

    /// No more requests from us: the daemon sees EOF.
    func shutdownWrite() { shutdown(fd, Int32(SHUT_WR)) }

    /// Writes `text` and shuts down our side in one go, so the EOF follows the bytes at once.
    func sendThenShutdown(_ text: String) async throws {
        let fd = self.fd
        let bytes = Array(text.utf8)
        let failure: Int32? = await offPool {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
            let code: Int32? = n == bytes.count ? nil : errno
            shutdown(fd, Int32(SHUT_WR))
            return code
        }
        if let failure { throw HarnessError("send: \(String(cString: strerror(failure)))") }
    }

    /// Writes every byte; throws when the daemon has closed the connection (EPIPE, ECONNRESET).
    func send(_ bytes: [UInt8]) async throws {
        let fd = self.fd
        let failure: Int32? = await offPool {
            bytes.withUnsafeBytes { raw -> Int32? in
                var offset = 0
                while offset < raw.count {
                    let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                    if n < 0 {
                        if errno == EINTR { continue }
                        return errno
                    }
                    offset += n
                }
                return nil
            }
        }
        if let failure { throw HarnessError("send: \(String(cString: strerror(failure)))") }
    }

    func send(_ text: String) async throws { try await send(Array(text.utf8)) }

    /// Sends one request line (a newline is added).
    func request(_ json: String) async throws { try await send(json + "\n") }

    /// The next line the daemon sends, without its newline; `.closed` on EOF; `.timeout` after `timeout` s.
    func readLine(timeout: Double = 20) async -> Read {
        await offPool { self.readLineBlocking(timeout: timeout) }
    }

    /// Sends a request line and reads the reply.
    func call(_ json: String, timeout: Double = 20) async throws -> Read {
        try await request(json)
        return await readLine(timeout: timeout)
    }

    private func readLineBlocking(timeout: Double) -> Read {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let line = takeLine() { return .line(line) }
            let left = deadline.timeIntervalSinceNow
            if left <= 0 { return .timeout }
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&poller, 1, Int32(left * 1000) + 1)
            if ready < 0 { if errno == EINTR { continue } else { return .closed } }
            if ready == 0 { continue }
            if !receive() { return .closed }
        }
    }

    /// Reads what is there into the buffer; false on EOF or error.
    fileprivate func receive() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 { buffer.append(contentsOf: chunk[..<n]); return true }
        if n < 0 && (errno == EINTR || errno == EAGAIN) { return true }
        return false
    }

    fileprivate func takeLine() -> String? {
        guard let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
        let line = String(decoding: buffer[..<newline], as: UTF8.self)
        buffer.removeSubrange(...newline)
        return line
    }

    /// Reads one line from each client at once (one poll over every descriptor), in the clients' order.
    static func readLines(_ clients: [RawClient], timeout: Double = 60) async -> [Read] {
        await offPool {
            var results = [Read?](repeating: nil, count: clients.count)
            let deadline = Date().addingTimeInterval(timeout)
            for (index, client) in clients.enumerated() {
                if let line = client.takeLine() { results[index] = .line(line) }
            }
            while results.contains(where: { $0 == nil }) {
                let left = deadline.timeIntervalSinceNow
                if left <= 0 { break }
                let pending = results.indices.filter { results[$0] == nil }
                var pollers = pending.map { pollfd(fd: clients[$0].fd, events: Int16(POLLIN), revents: 0) }
                let ready = poll(&pollers, nfds_t(pollers.count), Int32(left * 1000) + 1)
                if ready <= 0 { continue }
                for (slot, index) in pending.enumerated() where pollers[slot].revents != 0 {
                    let client = clients[index]
                    if !client.receive() { results[index] = .closed; continue }
                    if let line = client.takeLine() { results[index] = .line(line) }
                }
            }
            return results.map { $0 ?? .timeout }
        }
    }
}

/// Runs blocking work on a thread of its own and awaits it.
func offPool<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        onOwnThread { continuation.resume(returning: work()) }
    }
}

// MARK: - A notify socket that stops reading

/// A NOTIFY_SOCKET read only on demand: it plays a systemd too busy to read its notifications.
final class QuietNotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let stop = NSLock()
    private var stopped = false

    init(path: String) throws {
        self.path = path
        fd = try boundDatagramSocket(path: path)
    }

    deinit {
        stop.withLock { stopped = true }
        close(fd)
    }

    /// Reads datagrams until one has the line `line`; false after `timeout` seconds.
    func readUntil(_ line: String, timeout: Double) async -> Bool {
        let fd = self.fd
        return await offPool {
            let deadline = Date().addingTimeInterval(timeout)
            var buffer = [UInt8](repeating: 0, count: 8192)
            while deadline.timeIntervalSinceNow > 0 {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, Int32(deadline.timeIntervalSinceNow * 1000) + 1) > 0 else { continue }
                let count = recv(fd, &buffer, buffer.count, 0)
                if count > 0, String(decoding: buffer[..<count], as: UTF8.self).split(separator: "\n").contains(Substring(line)) {
                    return true
                }
            }
            return false
        }
    }

    /// From now on, reads (and drops) everything until the value goes away.
    func drainInBackground() {
        let fd = self.fd
        Thread { [weak self] in
            var buffer = [UInt8](repeating: 0, count: 8192)
            while let self, !self.stop.withLock({ self.stopped }) {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&poller, 1, 100) > 0 { _ = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT)) }
            }
        }.start()
    }
}

// MARK: - Reading replies

/// A reply line as a JSON object, or a test failure.
func replyObject(_ read: RawClient.Read, sourceLocation: SourceLocation = #_sourceLocation) -> [String: Any]? {
    guard let text = read.text else {
        Issue.record("expected a reply line, got \(read)", sourceLocation: sourceLocation)
        return nil
    }
    guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
        Issue.record("the reply is not a JSON object: \(text.prefix(300))", sourceLocation: sourceLocation)
        return nil
    }
    #expect(object["jsonrpc"] as? String == "2.0", "\(text.prefix(300))", sourceLocation: sourceLocation)
    return object
}

/// Checks a JSON-RPC error reply: a numeric `code` (the given one when known), a human `message`,
/// `data.code` as given, and the id (nil: expect `null`).
@discardableResult
func expectError(_ read: RawClient.Read, _ dataCode: String, rpcCode: Int? = nil, id: Int? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) -> [String: Any]? {
    guard let object = replyObject(read, sourceLocation: sourceLocation) else { return nil }
    guard let error = object["error"] as? [String: Any] else {
        Issue.record("expected an error reply, got \(read)", sourceLocation: sourceLocation)
        return nil
    }
    #expect(object["result"] == nil, sourceLocation: sourceLocation)
    let code = error["code"] as? Int
    #expect(code != nil, "error.code must be a number: \(error)", sourceLocation: sourceLocation)
    if let rpcCode { #expect(code == rpcCode, "\(error)", sourceLocation: sourceLocation) }
    let message = error["message"] as? String ?? ""
    #expect(message.count >= 5, "error.message must say what is wrong: \(error)", sourceLocation: sourceLocation)
    #expect((error["data"] as? [String: Any])?["code"] as? String == dataCode, "\(error)", sourceLocation: sourceLocation)
    if let id {
        #expect(object["id"] as? Int == id, "the reply must carry the request's id: \(object)", sourceLocation: sourceLocation)
    } else {
        #expect(object["id"] is NSNull, "an unreadable request is answered with id null: \(object)", sourceLocation: sourceLocation)
    }
    return error
}

/// Checks a successful reply with the given id; returns its result.
@discardableResult
func expectResult(_ read: RawClient.Read, id: Int, sourceLocation: SourceLocation = #_sourceLocation) -> Any? {
    guard let object = replyObject(read, sourceLocation: sourceLocation) else { return nil }
    #expect(object["error"] == nil, "expected a result, got \(object)", sourceLocation: sourceLocation)
    #expect(object["id"] as? Int == id, "\(object)", sourceLocation: sourceLocation)
    #expect(object["result"] != nil, "\(object)", sourceLocation: sourceLocation)
    return object["result"]
}

/// A status request with this id, and the check that its reply is a status.
func statusRequest(id: Int) -> String { #"{"jsonrpc":"2.0","id":\#(id),"method":"status"}"# }

func expectStatus(_ read: RawClient.Read, id: Int, sourceLocation: SourceLocation = #_sourceLocation) {
    let result = expectResult(read, id: id, sourceLocation: sourceLocation) as? [String: Any]
    #expect(result?["version"] is String, "\(read)", sourceLocation: sourceLocation)
    #expect(result?["uptime_s"] is NSNumber, "\(read)", sourceLocation: sourceLocation)
}

/// The daemon survived: still running, a fresh connection answers, `tttctl status` exits 0.
func expectStillServing(_ daemon: DaemonProcess, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    #expect(daemon.process.isRunning, "tttd died:\n\(daemon.log)", sourceLocation: sourceLocation)
    let fresh = try RawClient(path: daemon.socketPath)
    expectStatus(try await fresh.call(statusRequest(id: 99)), id: 99, sourceLocation: sourceLocation)
    let status = try await daemon.ctl(["status"])
    #expect(status.status == 0, "\(status)", sourceLocation: sourceLocation)
}

// MARK: - Tests

// One test at a time: each starts a tttd whose pool holds up to 8 connections of the shared test cluster.
@Suite("control protocol on the raw socket", .serialized)
struct ControlProtocolTests {
    @Test("a line that is not JSON → parse_error, and the same connection then answers status")
    func notJSON() async throws {
        let (daemon, _) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        expectError(try await client.call("hello, is this tttd?"), "parse_error", rpcCode: -32700)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":1,"method":"status""#), "parse_error", rpcCode: -32700)
        expectStatus(try await client.call(statusRequest(id: 1)), id: 1)
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("a 200 KB line → request_too_large (nothing of it runs), and the connection is still usable")
    func tooLarge() async throws {
        let (daemon, database) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)

        // Junk in one write.
        expectError(try await client.call(String(repeating: "x", count: 200_000)), "request_too_large", rpcCode: -32600)
        expectStatus(try await client.call(statusRequest(id: 2)), id: 2)

        // A well-formed accounts.add of 200 KB, written in 4 KB pieces: refused whole, nothing added.
        let names = (0..<20_000).map { "\"user\($0)\"" }.joined(separator: ",")
        let big = Array(#"{"jsonrpc":"2.0","id":3,"method":"accounts.add","params":{"usernames":[\#(names)],"labels":[]}}"#.utf8) + [10]
        #expect(big.count > 200_000)
        for start in stride(from: 0, to: big.count, by: 4096) {
            try await client.send(Array(big[start..<min(start + 4096, big.count)]))
        }
        expectError(await client.readLine(), "request_too_large", rpcCode: -32600)
        let list = expectResult(try await client.call(#"{"jsonrpc":"2.0","id":4,"method":"accounts.list"}"#), id: 4)
        #expect((list as? [Any])?.isEmpty == true, "the refused request added accounts: \(String(describing: list))")
        #expect(try await database.psql("SELECT count(*) FROM accounts") == "0")

        // Exactly 64 KiB is still one request (the limit is "at most 64 KiB").
        let prefix = #"{"jsonrpc":"2.0","id":5,"method":"status","#
        let padding = String(repeating: " ", count: 64 * 1024 - prefix.utf8.count - #""pad":1}"#.utf8.count)
        let exact = prefix + padding + #""pad":1}"#
        #expect(exact.utf8.count == 64 * 1024)
        expectStatus(try await client.call(exact), id: 5)
        expectError(try await client.call(exact + " "), "request_too_large", rpcCode: -32600)
        expectStatus(try await client.call(statusRequest(id: 6)), id: 6)

        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("invalid UTF-8 → parse_error, and the connection is still usable")
    func invalidUTF8() async throws {
        let (daemon, database) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        try await client.send([0xff, 0xfe, 0xc3, 0x28, 0x0a])
        expectError(await client.readLine(), "parse_error", rpcCode: -32700)
        // Inside a string of an otherwise well-formed request.
        try await client.send(Array(#"{"jsonrpc":"2.0","id":7,"method":"sta"#.utf8) + [0xc3, 0x28] + Array("tus\"}\n".utf8))
        expectError(await client.readLine(), "parse_error", rpcCode: -32700)
        try await client.send(Array(#"{"jsonrpc":"2.0","id":8,"method":"accounts.add","params":{"usernames":[""#.utf8)
                              + [0xed, 0xa0, 0x80] + Array(#""],"labels":[]}}"#.utf8) + [0x0a])
        expectError(await client.readLine(), "parse_error", rpcCode: -32700)
        // In a member the daemon does not otherwise read: the line is still not JSON (RFC 8259 §8.1).
        try await client.send(Array(#"{"jsonrpc":"2.0","id":10,"method":"status","x":""#.utf8) + [0xff] + Array("\"}\n".utf8))
        expectError(await client.readLine(), "parse_error", rpcCode: -32700)
        expectStatus(try await client.call(statusRequest(id: 9)), id: 9)
        #expect(try await database.psql("SELECT count(*) FROM accounts") == "0")
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("deeply nested JSON → parse_error (or too large, or a clean close), and the daemon still serves")
    func deeplyNested() async throws {
        let (daemon, _) = try await startDaemon()
        // 100,000 brackets (over the 64 KiB limit), and 60,000 (under it: the JSON parser sees them).
        for depth in [100_000, 60_000] {
            let client = try RawClient(path: daemon.socketPath)
            let sent: Bool
            do { try await client.send(String(repeating: "[", count: depth) + "\n"); sent = true } catch { sent = false }
            let reply = await client.readLine()
            if case .line = reply {
                let error = (replyObject(reply)?["error"] as? [String: Any])
                let code = (error?["data"] as? [String: Any])?["code"] as? String
                #expect(code == "parse_error" || code == "request_too_large", "depth \(depth): \(reply)")
                // The connection still works after an answered error.
                expectStatus(try await client.call(statusRequest(id: 10)), id: 10)
            } else {
                #expect(reply.isClosed, "depth \(depth): neither an answer nor a close but \(reply) (sent: \(sent))")
            }
            try await expectStillServing(daemon)
        }
        // The same inside a request's params.
        let client = try RawClient(path: daemon.socketPath)
        let nested = #"{"jsonrpc":"2.0","id":11,"method":"accounts.list","params":"# + String(repeating: #"{"a":"#, count: 8_000) + "1"
            + String(repeating: "}", count: 8_000) + "}"
        let reply = try await client.call(nested)
        if case .line = reply {
            let code = ((replyObject(reply)?["error"] as? [String: Any])?["data"] as? [String: Any])?["code"] as? String
            #expect(code == "parse_error" || code == "invalid_params", "\(reply)")
        } else {
            #expect(reply.isClosed, "\(reply)")
        }
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("unknown method → method_not_found with the request's id")
    func unknownMethod() async throws {
        let (daemon, _) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        let error = expectError(try await client.call(#"{"jsonrpc":"2.0","id":12,"method":"accounts.destroy_all"}"#),
                                "method_not_found", rpcCode: -32601, id: 12)
        #expect((error?["message"] as? String)?.contains("accounts.destroy_all") == true, "the message names the method: \(String(describing: error))")
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":13,"method":""}"#), "method_not_found", rpcCode: -32601, id: 13)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":14,"method":"STATUS"}"#), "method_not_found", rpcCode: -32601, id: 14)
        expectStatus(try await client.call(statusRequest(id: 15)), id: 15)
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("missing jsonrpc or method, or a wrong version → invalid_request")
    func invalidRequest() async throws {
        let (daemon, _) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        expectError(try await client.call(#"{"id":16,"method":"status"}"#), "invalid_request", rpcCode: -32600, id: 16)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":17}"#), "invalid_request", rpcCode: -32600, id: 17)
        expectError(try await client.call(#"{"jsonrpc":"1.0","id":18,"method":"status"}"#), "invalid_request", rpcCode: -32600, id: 18)
        expectError(try await client.call(#"{}"#), "invalid_request", rpcCode: -32600)
        expectStatus(try await client.call(statusRequest(id: 19)), id: 19)
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("valid JSON that is not a request object → invalid_request with id null (JSON-RPC 2.0 §5.1)")
    func notARequestObject() async throws {
        let (daemon, _) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        // The JSON-RPC 2.0 specification's own example: `--> 1` answers -32600 "Invalid Request", id null.
        expectError(try await client.call("1"), "invalid_request", rpcCode: -32600)
        expectError(try await client.call(#""status""#), "invalid_request", rpcCode: -32600)
        expectError(try await client.call("null"), "invalid_request", rpcCode: -32600)
        expectStatus(try await client.call(statusRequest(id: 20)), id: 20)
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("params of the wrong type → invalid_params, and nothing changes")
    func invalidParams() async throws {
        let (daemon, database) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":21,"method":"accounts.add","params":{"usernames":"alice","labels":[]}}"#),
                    "invalid_params", rpcCode: -32602, id: 21)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":22,"method":"accounts.add","params":["alice"]}"#),
                    "invalid_params", rpcCode: -32602, id: 22)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":23,"method":"accounts.add"}"#),
                    "invalid_params", rpcCode: -32602, id: 23)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":24,"method":"accounts.add","params":{"usernames":[42],"labels":[]}}"#),
                    "invalid_params", rpcCode: -32602, id: 24)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":25,"method":"accounts.list","params":5}"#),
                    "invalid_params", rpcCode: -32602, id: 25)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":26,"method":"accounts.remove","params":{"usernames":{"a":1}}}"#),
                    "invalid_params", rpcCode: -32602, id: 26)
        // A string id is echoed as a string.
        let reply = try await client.call(#"{"jsonrpc":"2.0","id":"abc","method":"accounts.list","params":"x"}"#)
        #expect(replyObject(reply)?["id"] as? String == "abc", "\(reply)")
        #expect(try await database.psql("SELECT count(*) FROM accounts") == "0")
        #expect(try await database.psql("SELECT count(*) FROM events") == "0")
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("several requests in one write are answered in order; blank lines are skipped")
    func pipelined() async throws {
        let (daemon, _) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        try await client.send("\n   \n" + statusRequest(id: 31) + "\n" + #"{"jsonrpc":"2.0","id":32,"method":"nope"}"# + "\n"
                              + "garbage\n" + statusRequest(id: 34) + "\r\n")
        expectStatus(await client.readLine(), id: 31)
        expectError(await client.readLine(), "method_not_found", id: 32)
        expectError(await client.readLine(), "parse_error")
        expectStatus(await client.readLine(), id: 34)
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("a notification (no id) gets no reply, even for an unknown method (JSON-RPC 2.0 §4.1)")
    func notifications() async throws {
        let (daemon, _) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        try await client.request(#"{"jsonrpc":"2.0","method":"status"}"#)
        try await client.request(#"{"jsonrpc":"2.0","method":"no.such.method"}"#)
        // The first line back must be the answer to this request: nothing was owed for the two above.
        expectStatus(try await client.call(statusRequest(id: 41)), id: 41)
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("\"id\": null is a request, not a notification (JSON-RPC 2.0 §4): it is answered, with id null")
    func nullID() async throws {
        let (daemon, _) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        let reply = try await client.call(#"{"jsonrpc":"2.0","id":null,"method":"status"}"#, timeout: 10)
        let object = replyObject(reply)
        #expect(object?["id"] is NSNull, "\(reply)")
        #expect((object?["result"] as? [String: Any])?["version"] is String, "\(reply)")
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("half a line, then the client leaves (EOF, close, reset): no answer, the daemon carries on")
    func halfLineThenDisconnect() async throws {
        let (daemon, _) = try await startDaemon()
        // Half a line, then EOF on our side: the daemon closes without answering.
        let half = try RawClient(path: daemon.socketPath)
        try await half.send(#"{"jsonrpc":"2.0","id":1,"method":"acc"#)
        half.shutdownWrite()
        let reply = await half.readLine()
        #expect(reply.isClosed, "a half line has nobody to answer: \(reply)")
        // Half a line, then the socket is simply closed (and a reset: unread data, SO_LINGER 0).
        for _ in 0..<20 {
            let client = try RawClient(path: daemon.socketPath)
            try await client.send(#"{"jsonrpc":"2.0","id":1,"method":"accounts.add","params":{"usern"#)
            client.close()
        }
        let reset = try RawClient(path: daemon.socketPath)
        try await reset.send(statusRequest(id: 1) + "\n" + statusRequest(id: 2) + "\n" + #"{"jsonrpc""#)
        reset.close()
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("a whole request, then EOF from the client (as `nc -N`, `socat`, a shell pipe do): still answered, then closed")
    func requestThenEOF() async throws {
        let (daemon, database) = try await startDaemon()
        // What `echo '{…}' | nc -N -U control.sock` does: the request, then EOF right behind it.
        let client = try RawClient(path: daemon.socketPath)
        try await client.sendThenShutdown(#"{"jsonrpc":"2.0","id":42,"method":"accounts.add","params":{"usernames":["alice"],"labels":[]}}"# + "\n")
        let added = expectResult(await client.readLine(), id: 42) as? [String: Any]
        #expect(added?["added"] as? [String] == ["alice"], "the reply to a request followed by EOF was lost")
        #expect(await client.readLine().isClosed)
        #expect(try await database.psql("SELECT count(*) FROM accounts") == "1")
        // Two requests, then EOF: both answered, in order.
        let two = try RawClient(path: daemon.socketPath)
        try await two.sendThenShutdown(statusRequest(id: 43) + "\n" + #"{"jsonrpc":"2.0","id":44,"method":"accounts.list"}"# + "\n")
        expectStatus(await two.readLine(), id: 43)
        expectResult(await two.readLine(), id: 44)
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("200 connections at once, each asking status: all are answered")
    func twoHundredConnections() async throws {
        let (daemon, _) = try await startDaemon()
        let clients = try (0..<200).map { _ in try RawClient(path: daemon.socketPath) }
        for (index, client) in clients.enumerated() { try await client.request(statusRequest(id: 1000 + index)) }
        let replies = await RawClient.readLines(clients)
        for (index, reply) in replies.enumerated() { expectStatus(reply, id: 1000 + index) }
        #expect(replies.filter { $0.text != nil }.count == 200)
        // Each connection keeps working: a second round on the same 200.
        for (index, client) in clients.enumerated() { try await client.request(statusRequest(id: 2000 + index)) }
        let again = await RawClient.readLines(clients)
        for (index, reply) in again.enumerated() { expectStatus(reply, id: 2000 + index) }
        clients.forEach { $0.close() }
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("600 connections at once: up to the limit of 512 are answered, the rest closed cleanly, none hangs")
    func beyondTheConnectionLimit() async throws {
        let (daemon, _) = try await startDaemon()
        let clients = try (0..<600).map { _ in try RawClient(path: daemon.socketPath) }
        for (index, client) in clients.enumerated() {
            // A connection the daemon already closed may refuse the write: its read below says closed.
            try? await client.request(statusRequest(id: index))
        }
        let replies = await RawClient.readLines(clients)
        let answered = replies.filter { $0.text != nil }.count
        let closed = replies.filter(\.isClosed).count
        #expect(answered + closed == 600, "none may hang: \(replies.filter { !$0.isClosed && $0.text == nil }.count) timed out")
        #expect(answered >= 200 && answered <= 512, "answered \(answered), closed \(closed)")
        for (index, reply) in replies.enumerated() where reply.text != nil { expectStatus(reply, id: index) }
        clients.forEach { $0.close() }
        // Once they are gone, the daemon serves again. The daemon frees its slots as it notices the
        // closes, and nothing tells us when that is done: retry a fresh connection, 20 s at most.
        let deadline = Date().addingTimeInterval(20)
        var served = false
        while !served && Date() < deadline {
            let probe = try RawClient(path: daemon.socketPath)
            served = try await probe.call(statusRequest(id: 7), timeout: 5).text != nil
            if !served { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(served, "the daemon never served again after the flood")
        try await expectStillServing(daemon)
        #expect(try await daemon.stop() == 0)
    }

    @Test("all of it on one daemon, then tttctl status still exits 0")
    func everythingThenStatus() async throws {
        let (daemon, _) = try await startDaemon()
        let client = try RawClient(path: daemon.socketPath)
        expectError(try await client.call("}{"), "parse_error")
        expectError(try await client.call(String(repeating: "y", count: 200_000)), "request_too_large")
        try await client.send([0xff, 0x0a])
        expectError(await client.readLine(), "parse_error")
        _ = try? await client.call(String(repeating: "[", count: 60_000), timeout: 20)
        let other = try RawClient(path: daemon.socketPath)
        expectError(try await other.call(#"{"jsonrpc":"2.0","id":1,"method":"x"}"#), "method_not_found", id: 1)
        expectError(try await other.call(#"{"id":2,"method":"status"}"#), "invalid_request", id: 2)
        expectError(try await other.call(#"{"jsonrpc":"2.0","id":3,"method":"accounts.add","params":{"usernames":7}}"#), "invalid_params", id: 3)
        try await other.send(#"{"jsonrpc":"2.0","id":4,"me"#)
        other.close()
        let many = try (0..<200).map { _ in try RawClient(path: daemon.socketPath) }
        for (index, each) in many.enumerated() { try await each.request(statusRequest(id: index)) }
        let replies = await RawClient.readLines(many)
        #expect(replies.filter { $0.text != nil }.count == 200)
        many.forEach { $0.close() }

        let status = try await daemon.ctl(["status", "--json"])
        #expect(status.status == 0, "\(status)")
        #expect((try status.json() as? [String: Any])?["database"] as? String == "ok", "\(status)")
        #expect(daemon.process.isRunning)
        #expect(try await daemon.stop() == 0)
    }

    @Test("a notify socket nobody reads (systemd busy) does not stop tttd from answering its control socket")
    func unreadNotifySocket() async throws {
        let database = try await TestDatabase.create()
        // tttd's NOTIFY_SOCKET is one of our own that is read only until READY=1: the harness's listener,
        // which reads everything as systemd does, is left out. WATCHDOG=1 every 100 ms: the unread queue
        // (net.unix.max_dgram_qlen, 10 here) is full within about a second.
        let directory = try TemporaryDirectory()
        let quiet = try QuietNotifySocket(path: directory.file("quiet-notify.sock"))
        let daemon = try DaemonProcess(database: database,
                                       environment: ["WATCHDOG_USEC": "200000", "NOTIFY_SOCKET": quiet.path])
        try await daemon.start(waitForReady: false)
        #expect(await quiet.readUntil("READY=1", timeout: 60), "no READY=1 from tttd:\n\(daemon.log)")
        // From here on nothing reads the notify socket. Each add also changes STATUS=.
        let client = try RawClient(path: daemon.socketPath)
        var answered = 0
        for index in 0..<15 {
            let reply = try await client.call(
                #"{"jsonrpc":"2.0","id":\#(index),"method":"accounts.add","params":{"usernames":["user_\#(index)"],"labels":[]}}"#,
                timeout: 10)
            guard reply.text != nil else {
                Issue.record("accounts.add #\(index) got no answer within 10 s (\(reply)): tttd is stuck sending to NOTIFY_SOCKET")
                break
            }
            expectResult(reply, id: index)
            answered += 1
        }
        #expect(answered == 15)
        let fresh = try RawClient(path: daemon.socketPath)
        let status = try await fresh.call(statusRequest(id: 99), timeout: 10)
        #expect(status.text != nil, "status got no answer within 10 s: \(status)")
        // Read again (whatever waited to send is released), then tttd stops normally.
        quiet.drainInBackground()
        #expect(try await daemon.stop() == 0, "\(daemon.log)")
    }

    // MARK: Helpers

    /// A fresh database and a tttd on it, ready (the harness reads its notifications as systemd would).
    private func startDaemon() async throws -> (DaemonProcess, TestDatabase) {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database)
        try await daemon.start()
        return (daemon, database)
    }
}
