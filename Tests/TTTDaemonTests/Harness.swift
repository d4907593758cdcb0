import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// What `make test` provides: a PostgreSQL superuser URL, the PostgreSQL binaries, the built binaries.
enum TestEnvironment {
    static let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var binDir: URL {
        if let dir = ProcessInfo.processInfo.environment["TTT_TEST_BIN_DIR"], !dir.isEmpty { return URL(fileURLWithPath: dir) }
        return repoRoot.appendingPathComponent(".build/debug")
    }

    static var tttd: String { binDir.appendingPathComponent("tttd").path }
    static var tttctl: String { binDir.appendingPathComponent("tttctl").path }

    /// The superuser URL of the test cluster (`make test` starts it and sets TTT_TEST_DATABASE_URL).
    static func adminURL() throws -> String {
        guard let url = ProcessInfo.processInfo.environment["TTT_TEST_DATABASE_URL"], !url.isEmpty else {
            throw HarnessError("TTT_TEST_DATABASE_URL is not set: run the tests with `make test`")
        }
        return url
    }

    static var pgBin: String {
        ProcessInfo.processInfo.environment["TTT_TEST_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A temporary folder, removed when the test's value goes away. Short paths: Unix socket paths are ≤ 107 bytes.
final class TemporaryDirectory: @unchecked Sendable {
    let path: String

    init() throws {
        var template = Array("/tmp/ttt-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError("mkdtemp failed") }
        path = String(cString: made)
        chmod(path, 0o755)
    }

    func file(_ name: String) -> String { path + "/" + name }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// A database of its own for each test, in the shared test cluster.
struct TestDatabase: Sendable {
    let name: String
    let url: String

    static func create() async throws -> TestDatabase {
        let admin = try TestEnvironment.adminURL()
        let name = "ttt_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        let result = try await runCommand("/usr/bin/psql", [admin, "-v", "ON_ERROR_STOP=1", "-qc", "CREATE DATABASE \(name)"])
        guard result.status == 0 else { throw HarnessError("cannot create the test database: \(result)") }
        return TestDatabase(name: name, url: replacingDatabase(in: admin, with: name))
    }

    /// `postgresql://u@h:p/db?x` → same URL with another database.
    static func replacingDatabase(in url: String, with database: String) -> String {
        guard var components = URLComponents(string: url) else { return url }
        components.path = "/" + database
        return components.string ?? url
    }

    func psql(_ sql: String) async throws -> String {
        let result = try await runCommand("/usr/bin/psql", [url, "-v", "ON_ERROR_STOP=1", "-AtqXc", sql])
        guard result.status == 0 else { throw HarnessError("psql failed: \(result)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// A Unix datagram socket bound to `path`, as systemd's NOTIFY_SOCKET is.
func boundDatagramSocket(path: String) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket failed") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
        let reason = String(cString: strerror(errno))
        close(fd)
        throw HarnessError("bind \(path) failed: \(reason)")
    }
    return fd
}

/// A datagram socket that plays systemd's NOTIFY_SOCKET: the daemon's READY=1 is the event tests await.
/// Like systemd it reads every datagram as it comes (an unread queue would fill up after ten).
final class NotifyListener: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let condition = NSCondition()
    private var received = [String]()
    private var closed = false

    init(path: String) throws {
        self.path = path
        fd = try boundDatagramSocket(path: path)
        let thread = Thread { [fd, weak self] in
            var buffer = [UInt8](repeating: 0, count: 8192)
            while true {
                var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                let ready = poll(&poller, 1, 200)
                guard let self else { return }
                if self.condition.withLock({ self.closed }) { return }
                guard ready > 0 else { continue }
                let count = recv(fd, &buffer, buffer.count, 0)
                guard count > 0 else { continue }
                self.condition.withLock {
                    self.received.append(String(decoding: buffer[..<count], as: UTF8.self))
                    self.condition.broadcast()
                }
            }
        }
        thread.start()
    }

    deinit {
        condition.withLock { closed = true }
        close(fd)
    }

    /// All messages so far (each datagram may hold several `KEY=value` lines).
    var messages: [String] { condition.withLock { received } }

    /// Waits until a datagram (any so far, or a new one) contains `line`, e.g. "READY=1".
    func waitFor(_ line: String, timeout: Double = 60) async throws {
        let found = await wait(from: 0, timeout: timeout) { $0.split(separator: "\n").contains(Substring(line)) }
        guard found != nil else { throw HarnessError("no \(line) from tttd within \(timeout) s; got \(messages)") }
    }

    /// Waits for a datagram (any so far, or a new one) with a line starting with `prefix`; returns that line.
    func waitForPrefix(_ prefix: String, timeout: Double = 60) async throws -> String {
        let found = await wait(from: 0, timeout: timeout) { message in
            message.split(separator: "\n").contains { $0.hasPrefix(prefix) }
        }
        guard let found, let line = found.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else {
            throw HarnessError("no \(prefix)… from tttd within \(timeout) s; got \(messages)")
        }
        return String(line)
    }

    /// Waits for a line (of any datagram so far, or a new one) that `matches`; returns it.
    func waitForLine(timeout: Double = 60, _ matches: @escaping @Sendable (Substring) -> Bool) async throws -> String {
        let found = await wait(from: 0, timeout: timeout) { $0.split(separator: "\n").contains(where: matches) }
        guard let found, let line = found.split(separator: "\n").first(where: matches) else {
            throw HarnessError("no matching notification from tttd within \(timeout) s; got \(messages)")
        }
        return String(line)
    }

    /// The first message from index `start` on that matches, waiting on the condition off the cooperative pool.
    private func wait(from start: Int, timeout: Double, _ matches: @escaping @Sendable (String) -> Bool) async -> String? {
        await withCheckedContinuation { continuation in
            onOwnThread {
                let deadline = Date().addingTimeInterval(timeout)
                self.condition.lock()
                defer { self.condition.unlock() }
                while true {
                    if let found = self.received.dropFirst(start).first(where: matches) {
                        return continuation.resume(returning: found)
                    }
                    if !self.condition.wait(until: deadline) { return continuation.resume(returning: nil) }
                }
            }
        }
    }
}

/// A real tttd process with its own config, socket and notify socket.
final class DaemonProcess: @unchecked Sendable {
    let directory: TemporaryDirectory
    let configPath: String
    let socketPath: String
    let notify: NotifyListener
    let process = Process()
    private let stderrPipe = Pipe()
    /// Signalled once tttd ended, its status in `endStatus` (waitid, not Foundation's termination
    /// handler: see `waitForEnd(of:)`).
    private let exited = DispatchSemaphore(value: 0)
    private let endStatus = Box<Int32>(0)
    private let output = NSCondition()
    private var stderrData = Data()
    /// tttd's stderr reached its end: everything it wrote is in `stderrData`.
    private var stderrEnded = false

    /// `extraConfig` is appended to the YAML (top-level sections); `environment` adds variables.
    init(database: TestDatabase, extraConfig: String = "", environment: [String: String] = [:],
         directory: TemporaryDirectory? = nil) throws {
        self.directory = try directory ?? TemporaryDirectory()
        configPath = self.directory.file("tttd.yaml")
        socketPath = self.directory.file("control.sock")
        notify = try NotifyListener(path: self.directory.file("notify-\(UInt32.random(in: 0...UInt32.max)).sock"))
        let yaml = """
            database:
              url: "\(database.url)"
            control:
              socket: "\(socketPath)"
              admin_group: ttt-test-admins
              viewer_group: ttt-test-viewers
            log:
              level: debug
            evidence:
              directory: "\(self.directory.file("evidence"))"
            \(extraConfig)
            """
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: TestEnvironment.tttd)
        process.arguments = ["--config", configPath]
        var env = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TTTD_") && $0.key != "WATCHDOG_USEC" && $0.key != "WATCHDOG_PID" }
        env["NOTIFY_SOCKET"] = notify.path
        for (key, value) in environment { env[key] = value }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = stderrPipe
        process.standardInput = FileHandle.nullDevice
    }

    /// Starts tttd and waits for READY=1.
    func start(waitForReady: Bool = true) async throws {
        try process.run()
        onOwnThread { [process, endStatus, exited] in
            endStatus.value = waitForEnd(of: process)
            exited.signal()
        }
        let handle = stderrPipe.fileHandleForReading
        onOwnThread { [weak self] in
            while true {
                let chunk = handle.availableData
                guard let self else { return }
                if chunk.isEmpty {
                    return self.output.withLock {
                        self.stderrEnded = true
                        self.output.broadcast()
                    }
                }
                self.output.withLock {
                    self.stderrData.append(chunk)
                    self.output.broadcast()
                }
            }
        }
        if waitForReady {
            do { try await notify.waitFor("READY=1") } catch {
                throw HarnessError("\(error)\ntttd stderr:\n\(log)")
            }
        }
    }

    var pid: Int32 { process.processIdentifier }
    var log: String { output.withLock { String(decoding: stderrData, as: UTF8.self) } }

    /// Waits until tttd's log so far satisfies `matches`.
    func waitForLog(_ what: String, timeout: Double = 60, _ matches: @escaping @Sendable (String) -> Bool) async throws {
        let found: Bool = await withCheckedContinuation { continuation in
            onOwnThread {
                let deadline = Date().addingTimeInterval(timeout)
                self.output.lock()
                defer { self.output.unlock() }
                while true {
                    if matches(String(decoding: self.stderrData, as: UTF8.self)) { return continuation.resume(returning: true) }
                    if !self.output.wait(until: deadline) { return continuation.resume(returning: false) }
                }
            }
        }
        if !found { throw HarnessError("tttd did not log \(what) within \(timeout) s; its log ends:\n\(log.suffix(3000))") }
    }

    /// Waits until tttd has taken the subscription of the `tttctl follow` running as `pid`: from then
    /// on it hands that follower every event committed.
    func waitForFollower(pid: Int32, timeout: Double = 60) async throws {
        try await waitForLog("the subscription of tttctl follow (pid \(pid))", timeout: timeout) { log in
            log.split(separator: "\n").contains { $0.contains("follower subscribed") && $0.contains("pid \(pid))") }
        }
    }

    func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the process to end and returns its exit status (128+N for a signal, as shells say).
    func waitForExit(timeout: Double = 60) async throws -> Int32 {
        let exited = self.exited
        let done: Bool = await withCheckedContinuation { continuation in
            onOwnThread {
                continuation.resume(returning: exited.wait(timeout: .now() + timeout) == .success)
            }
        }
        guard done else { throw HarnessError("tttd did not exit within \(timeout) s\n\(log)") }
        exited.signal()
        // The exit can come before the last of its stderr is read: a test reads `log` next. Bounded,
        // in case a child process still holds the pipe.
        await withCheckedContinuation { continuation in
            onOwnThread {
                let deadline = Date().addingTimeInterval(5)
                self.output.lock()
                defer { self.output.unlock() }
                while !self.stderrEnded && self.output.wait(until: deadline) {}
                continuation.resume()
            }
        }
        return endStatus.value
    }

    func stop() async throws -> Int32 {
        guard process.isRunning else { return try await waitForExit() }
        signal(SIGTERM)
        return try await waitForExit()
    }

    /// Runs tttctl against this daemon, as root or as one of the test users.
    func ctl(_ arguments: [String], as user: String? = nil, input: Data? = nil) async throws -> CommandResult {
        try await runTTTCTL(arguments + ["--socket", socketPath], as: user, input: input)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// tttctl as root, or as a test user through runuser (users made by scripts/test-users).
func runTTTCTL(_ arguments: [String], as user: String? = nil, input: Data? = nil,
               environment: [String: String]? = nil) async throws -> CommandResult {
    if let user {
        return try await runCommand("/usr/sbin/runuser", ["-u", user, "--", TestEnvironment.tttctl] + arguments,
                                    environment: environment, input: input)
    }
    return try await runCommand(TestEnvironment.tttctl, arguments, environment: environment, input: input)
}

extension CommandResult {
    func json() throws -> Any {
        try JSONSerialization.jsonObject(with: Data(stdout.utf8), options: [.fragmentsAllowed])
    }
}
