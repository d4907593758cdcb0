import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A real tttsim process on a free port; its control API is driven with curl.
final class SimProcess: @unchecked Sendable {
    let process = Process()
    private(set) var baseURL = ""
    private let output = Pipe()
    private let errors = Pipe()

    init(accounts: Int = 0, extraArguments: [String] = []) {
        process.executableURL = TestEnvironment.binDir.appendingPathComponent("tttsim")
        process.arguments = ["--listen", "127.0.0.1:0", "--accounts", String(accounts)] + extraArguments
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
    }

    /// Starts tttsim and waits for its "listening on" line.
    func start() async throws {
        try process.run()
        let handle = output.fileHandleForReading
        let line: String? = await withCheckedContinuation { continuation in
            onOwnThread {
                var buffer = Data()
                while !buffer.contains(UInt8(ascii: "\n")) {
                    let chunk = handle.availableData
                    if chunk.isEmpty { break }
                    buffer.append(chunk)
                }
                continuation.resume(returning: String(decoding: buffer, as: UTF8.self))
            }
        }
        guard let line, let range = line.range(of: "http://") else {
            throw HarnessError("tttsim did not start: \(line ?? "")")
        }
        baseURL = String(line[range.lowerBound...]).trimmingCharacters(in: .whitespacesAndNewlines)
        // Keep draining stderr so tttsim never blocks on a full pipe.
        let errorHandle = errors.fileHandleForReading
        onOwnThread { while !errorHandle.availableData.isEmpty {} }
    }

    @discardableResult
    func request(_ method: String, _ path: String, json: String? = nil) async throws -> (status: Int, body: String) {
        var arguments = ["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, baseURL + path]
        if let json { arguments += ["-H", "Content-Type: application/json", "--data-binary", json] }
        let result = try await runCommand("/usr/bin/curl", arguments)
        guard result.status == 0, let split = result.stdout.lastIndex(of: "\n") else {
            throw HarnessError("curl \(method) \(path) failed: \(result)")
        }
        return (Int(result.stdout[result.stdout.index(after: split)...]) ?? 0, String(result.stdout[..<split]))
    }

    func goLive(_ username: String, title: String = "Bonsoir") async throws -> String {
        let answer = try await request("POST", "/_sim/lives", json: #"{"username":"\#(username)","title":"\#(title)"}"#)
        guard answer.status / 100 == 2, let object = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
              let room = object["room_id"] as? String else {
            throw HarnessError("cannot start a live for \(username): \(answer)")
        }
        return room
    }

    func endLive(_ username: String) async throws {
        let answer = try await request("DELETE", "/_sim/lives/\(username)")
        guard answer.status / 100 == 2 else { throw HarnessError("cannot end the live of \(username): \(answer)") }
    }

    /// The host pauses (or resumes) the live: TikTok's status 3.
    func pause(_ username: String, _ paused: Bool = true) async throws {
        let answer = try await request("PATCH", "/_sim/lives/\(username)", json: #"{"paused":\#(paused)}"#)
        guard answer.status / 100 == 2 else { throw HarnessError("cannot pause the live of \(username): \(answer)") }
    }

    func fault(_ json: String) async throws {
        let answer = try await request("POST", "/_sim/faults", json: json)
        guard answer.status / 100 == 2 else { throw HarnessError("fault refused: \(answer)") }
    }

    func clearFaults() async throws { try await request("DELETE", "/_sim/faults") }

    func stats() async throws -> [String: Any] {
        let answer = try await request("GET", "/_sim/stats")
        return (try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any]) ?? [:]
    }

    /// Requests tttsim has seen on one TikTok path.
    func requests(to path: String) async throws -> Int {
        ((try await stats())["requests"] as? [String: Any])?[path] as? Int ?? 0
    }

    /// Waits until tttsim has answered `count` more requests on `path`: the event a fault test awaits.
    /// (tttsim has no push channel, so this polls its stats, with a deadline.)
    func waitForRequests(to path: String, atLeast count: Int, timeout: Double = 60) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try await requests(to: path) >= count { return }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw HarnessError("tttsim saw fewer than \(count) requests to \(path) within \(timeout) s")
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}

/// `tttctl follow --json` running in the background; tests await its events one by one.
final class FollowProcess: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private let lock = NSLock()
    private var lines = [String]()
    private var waiting: (predicate: @Sendable (String) -> Bool, continuation: CheckedContinuation<String, Never>)?

    /// Returns once tttd has the subscription: every event committed after that reaches it.
    init(daemon: DaemonProcess, arguments: [String]) async throws {
        process.executableURL = URL(fileURLWithPath: TestEnvironment.tttctl)
        process.arguments = ["follow", "--json", "--socket", daemon.socketPath] + arguments
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let handle = output.fileHandleForReading
        onOwnThread { [weak self] in
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[..<newline], as: UTF8.self)
                    buffer.removeSubrange(...newline)
                    self?.received(line)
                }
            }
        }
        try await daemon.waitForFollower(pid: process.processIdentifier)
    }

    private func received(_ line: String) {
        lock.lock()
        lines.append(line)
        if let waiting, waiting.predicate(line) {
            self.waiting = nil
            lock.unlock()
            waiting.continuation.resume(returning: line)
            return
        }
        lock.unlock()
    }

    var events: [[String: Any]] {
        lock.withLock { lines }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    /// Waits for an event of this type (already received or next), returns it as an object.
    func next(_ type: String, timeout: Double = 60) async throws -> [String: Any] {
        let match: @Sendable (String) -> Bool = { line in
            ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any])?["type"] as? String == type
        }
        let line: String? = await withTaskGroup(of: String?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    self.lock.lock()
                    if let found = self.lines.first(where: match) {
                        self.lock.unlock()
                        continuation.resume(returning: found)
                    } else {
                        self.waiting = (match, continuation)
                        self.lock.unlock()
                    }
                }
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(timeout))
                return nil
            }
            let first = await group.next() ?? nil
            if first == nil {
                // Timed out: release the waiter so the group can finish.
                let pending = self.lock.withLock { () -> CheckedContinuation<String, Never>? in
                    defer { self.waiting = nil }
                    return self.waiting?.continuation
                }
                pending?.resume(returning: "")
            }
            group.cancelAll()
            return first
        }
        guard let line, !line.isEmpty, let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw HarnessError("no \(type) event within \(timeout) s; got \(lock.withLock { lines })")
        }
        return object
    }

    /// Removes the events received so far, so that `next` waits for new ones.
    func consume() { lock.withLock { lines.removeAll() } }

    deinit {
        if process.isRunning { process.terminate() }
    }
}
