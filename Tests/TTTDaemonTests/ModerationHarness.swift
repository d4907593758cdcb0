import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// What the analysis and alert tests need besides Harness.swift, SimHarness.swift and
// ASRHarness.swift: the Python fixtures (Fixtures/chat_server.py, Fixtures/webhook_receiver.py)
// and scripts/smtp-sink as child processes tied to this test process, and a tttd whose windows
// are written straight into the database for the analyzer to pick up.

/// The write end of a pipe that only this process holds, given to a child as its standard input:
/// when this process ends, however it ends, the child sees end of file and exits.
final class Lifeline: @unchecked Sendable {
    let pipe = Pipe()
    init() {
        // Not inherited by the other children (tttd, tttsim, ffmpeg): they would keep the line open.
        _ = fcntl(pipe.fileHandleForWriting.fileDescriptor, F_SETFD, FD_CLOEXEC)
    }
    func cut() { try? pipe.fileHandleForWriting.close() }
}

/// Reads a handle on a Dispatch thread into `log` until end of file; `firstLine` resolves with the
/// first line that contains `marker` (nil at end of file or after `timeout`).
private func drain(_ handle: FileHandle, into log: Box<String>, lock: NSLock, marker: String?,
                   timeout: Double) async -> String? {
    await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
        let resumed = Box(false)
        let finish: @Sendable (String?) -> Void = { value in
            lock.withLock {
                if resumed.value { return }
                resumed.value = true
                continuation.resume(returning: value)
            }
        }
        if marker == nil { finish(nil) }
        onOwnThread {
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return finish(nil) }
                lock.withLock { log.value = String((log.value + String(decoding: chunk, as: UTF8.self)).suffix(100_000)) }
                guard let marker else { continue }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[..<newline], as: UTF8.self)
                    buffer.removeSubrange(...newline)
                    if line.contains(marker) { finish(line) }
                }
            }
        }
        onOwnThread { Thread.sleep(forTimeInterval: timeout); finish(nil) }
    }
}

/// A Python fixture of Fixtures/ (standard library only): started with `--watch-stdin` on a
/// lifeline, it prints its base URL on stdout; its requests log goes to stderr (kept for messages).
final class FixtureServer: @unchecked Sendable {
    let process = Process()
    private(set) var baseURL = ""
    private let lifeline = Lifeline()
    private let stdout = Pipe()
    private let stderr = Pipe()
    private let lock = NSLock()
    private let errors = Box("")
    private let output = Box("")

    static func path(_ script: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(script)").path
    }

    init(script: String, arguments: [String]) async throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.path(script)] + arguments + ["--watch-stdin"]
        process.standardInput = lifeline.pipe.fileHandleForReading
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        try? lifeline.pipe.fileHandleForReading.close()
        _ = await drain(stderr.fileHandleForReading, into: errors, lock: lock, marker: nil, timeout: 0)
        let line = await drain(stdout.fileHandleForReading, into: output, lock: lock, marker: "http://", timeout: 30)
        guard let line else {
            throw HarnessError("\(script) did not start: \(lock.withLock { errors.value })")
        }
        baseURL = line.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The port it listens on.
    var port: Int { Int(baseURL.split(separator: ":").last ?? "") ?? 0 }

    /// What it wrote on stderr (one line per request).
    var log: String { lock.withLock { errors.value } }

    /// A JSON request to one of its control endpoints; returns the parsed answer.
    @discardableResult
    func call(_ method: String, _ path: String, json: Any? = nil) async throws -> Any {
        var arguments = ["-sS", "-f", "-X", method, baseURL + path]
        if let json {
            let body = String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
            arguments += ["-H", "Content-Type: application/json", "--data-binary", body]
        }
        let result = try await runCommand("/usr/bin/curl", arguments)
        guard result.status == 0 else { throw HarnessError("curl \(method) \(baseURL)\(path): \(result)") }
        return try result.json()
    }

    /// Ends it now (SIGKILL), and waits until it is gone: its port is free again.
    func stop() {
        lifeline.cut()
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        _ = waitForEnd(of: process)
    }

    deinit {
        lifeline.cut()
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Fixtures/chat_server.py: a scripted OpenAI-compatible chat-completions endpoint.
final class ChatServer: Sendable {
    let server: FixtureServer

    private init(server: FixtureServer) { self.server = server }

    /// With `apiKey`, requests without that bearer key are answered 401.
    static func start(apiKey: String? = nil) async throws -> ChatServer {
        ChatServer(server: try await FixtureServer(script: "chat_server.py",
                                                   arguments: ["--listen", "127.0.0.1:0"] + (apiKey.map { ["--api-key", $0] } ?? [])))
    }

    /// tttd's `analysis.base_url`.
    var baseURL: String { server.baseURL + "/v1" }

    /// Queues behaviours for the next requests (see chat_server.py).
    func script(_ behaviours: [[String: Any]]) async throws {
        try await server.call("POST", "/_script", json: behaviours)
    }

    func configure(_ config: [String: Any]) async throws {
        try await server.call("POST", "/_config", json: config)
    }

    /// Every chat request received, in order.
    func requests() async throws -> [[String: Any]] {
        guard let list = try await server.call("GET", "/_requests") as? [[String: Any]] else {
            throw HarnessError("chat_server: /_requests is not a list")
        }
        return list
    }

    /// The windows judged, in request order.
    func windows() async throws -> [String] { try await requests().map { $0["window"] as? String ?? "" } }
}

/// Fixtures/webhook_receiver.py: a receiver that verifies Standard Webhooks signatures.
final class WebhookReceiver: Sendable {
    /// The secret tttd signs with (`whsec_` + base64 of 24 bytes).
    static let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    let server: FixtureServer

    private init(server: FixtureServer) { self.server = server }

    /// On a free port, or on `port` (a receiver that comes back where another listened).
    static func start(port: Int = 0, failFirst: Int = 0) async throws -> WebhookReceiver {
        WebhookReceiver(server: try await FixtureServer(
            script: "webhook_receiver.py",
            arguments: ["--secret", secret, "--listen", "127.0.0.1:\(port)", "--fail-first", String(failFirst)]))
    }

    var url: String { server.baseURL + "/hooks/tttd" }
    var port: Int { server.port }

    func deliveries() async throws -> [[String: Any]] {
        guard let list = try await server.call("GET", "/_deliveries") as? [[String: Any]] else {
            throw HarnessError("webhook_receiver: /_deliveries is not a list")
        }
        return list
    }

    /// Waits until it has received `count` requests that match (a receiver has no push channel:
    /// polled, with a deadline).
    @discardableResult
    func waitForDeliveries(_ what: String, count: Int = 1, timeout: Double,
                           _ matches: @escaping ([String: Any]) -> Bool = { _ in true }) async throws -> [[String: Any]] {
        var found = [[String: Any]]()
        do {
            try await eventually("\(what): \(count) webhook request(s)", timeout: timeout) {
                found = try await deliveries().filter(matches)
                return found.count >= count
            }
        } catch {
            throw HarnessError("\(error); received: \((try? await deliveries()) ?? [])")
        }
        return found
    }

    func configure(_ config: [String: Any]) async throws {
        try await server.call("POST", "/_config", json: config)
    }

    func stop() { server.stop() }
}

/// scripts/smtp-sink (a real aiosmtpd), without TLS, keeping what it accepts in a folder.
final class SMTPSinkProcess: @unchecked Sendable {
    let process = Process()
    let maildir: TemporaryDirectory
    private(set) var port = 0
    private let lifeline = Lifeline()
    private let output = Pipe()
    private let lock = NSLock()
    private let printed = Box("")

    /// `scripts/smtp-sink --setup-only`, once per test process (a few seconds the first time ever).
    private static let environmentReady: Task<Void, any Error> = Task.detached {
        let result = try await runCommand(TestEnvironment.repoRoot.appendingPathComponent("scripts/smtp-sink").path, ["--setup-only"])
        guard result.status == 0 else { throw HarnessError("scripts/smtp-sink --setup-only failed: \(result)") }
    }

    /// `environment` adds variables (SMTP_SINK_PASSWORD for `--auth-user`).
    init(_ arguments: [String] = [], environment: [String: String] = [:]) async throws {
        try await Self.environmentReady.value
        maildir = try TemporaryDirectory()
        process.executableURL = TestEnvironment.repoRoot.appendingPathComponent("scripts/smtp-sink")
        process.arguments = ["--listen", "127.0.0.1:0", "--maildir", maildir.path, "--tls", "none",
                             "--exit-on-stdin-eof"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardInput = lifeline.pipe.fileHandleForReading
        process.standardOutput = output
        process.standardError = output
        try process.run()
        try? lifeline.pipe.fileHandleForReading.close()
        let line = await drain(output.fileHandleForReading, into: printed, lock: lock, marker: "listening on ", timeout: 60)
        guard let line, let port = Int(line.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") else {
            throw HarnessError("scripts/smtp-sink did not start: \(log)")
        }
        self.port = port
    }

    /// tttd's `alerts.email.smtp_url`: plaintext (the sink offers no STARTTLS).
    var url: String { "smtp://127.0.0.1:\(port)?tls=none" }

    /// What it printed ("refused 1 451 at data", "accepted 0001", …).
    var log: String { lock.withLock { printed.value } }

    /// The messages accepted so far (the sink's NNNN.json records, in order).
    func messages() throws -> [[String: Any]] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: maildir.path)) ?? []
        return try names.filter { $0.hasSuffix(".json") }.sorted().map { name in
            let data = try Data(contentsOf: URL(fileURLWithPath: maildir.file(name)))
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw HarnessError("\(name) is not a JSON object")
            }
            return object
        }
    }

    deinit {
        lifeline.cut()
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// A JSON value as text ("" when it is not a string).
func string(_ value: Any?) -> String { value as? String ?? "" }

/// A SQL string literal.
func sqlLiteral(_ text: String) -> String { "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }

/// SHA-256 of a file, as lower-case hex (sha256sum).
func sha256(ofFile path: String) async throws -> String {
    let result = try await runCommand("/usr/bin/sha256sum", [path])
    guard result.status == 0, let hex = result.stdout.split(separator: " ").first else {
        throw HarnessError("sha256sum \(path): \(result)")
    }
    return String(hex)
}

/// A chat server, a database and a tttd that judges with it; windows are written straight into
/// `transcripts` (analysis_state 'pending') of lives that are already over, so no TikTok, ffmpeg or
/// ASR is involved: tttd's analysis queue picks them up within a second.
struct ModerationRig {
    let chat: ChatServer
    let database: TestDatabase
    let daemon: DaemonProcess
    let follow: EventFollower
    let config: String

    static var promptPath: String { TestEnvironment.repoRoot.appendingPathComponent("etc/tttd/prompts/moderation.yaml").path }

    /// `analysis` on the chat server at `requestsPerMinute` (600: no wait); `analysis` adds keys to
    /// that section; `extra` adds top-level sections (alerts: …).
    static func config(chat: ChatServer, requestsPerMinute: Int = 600, analysis: String = "", extra: String = "") -> String {
        """
        transcription:
          enabled: false
        analysis:
          base_url: "\(chat.baseURL)"
          model: test-model
          prompt: "\(promptPath)"
          requests_per_minute: \(requestsPerMinute)
        \(analysis)
        \(extra)
        """
    }

    init(requestsPerMinute: Int = 600, analysis: String = "", extra: String = "", chat: ChatServer? = nil) async throws {
        if let chat { self.chat = chat } else { self.chat = try await ChatServer.start() }
        database = try await TestDatabase.create()
        let indented = analysis.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n")
        config = Self.config(chat: self.chat, requestsPerMinute: requestsPerMinute, analysis: indented, extra: extra)
        daemon = try DaemonProcess(database: database, extraConfig: config)
        try await daemon.start()
        follow = try await EventFollower(daemon: daemon)
    }

    /// A live that is over (so that nothing watches or captures it); returns its id.
    func insertLive(_ username: String, title: String = "Le débat du soir") async throws -> Int {
        let id = try await database.psql("""
            INSERT INTO lives (username, room_id, title, started_at, ended_at, status, end_reason)
            VALUES (\(sqlLiteral(username)), '7312345678901234567', \(sqlLiteral(title)), now() - interval '10 minutes', now(),
                    'ended', 'test') RETURNING id
            """)
        guard let id = Int(id) else { throw HarnessError("no live id: \(id)") }
        return id
    }

    /// Windows of 15 s with these texts, from `seq` on, all waiting for the analyzer (one transaction).
    func insertWindows(_ liveID: Int, _ texts: [String], from seq: Int = 0) async throws {
        let rows = texts.enumerated().map { index, text in
            let n = seq + index
            return "(\(liveID), \(n), \(n * 15), \(n * 15 + 15), \(sqlLiteral(text)), 'fr', 'pending')"
        }
        _ = try await database.psql("""
            INSERT INTO transcripts (live_id, seq, start_s, end_s, text, language, analysis_state)
            VALUES \(rows.joined(separator: ", "))
            """)
    }

    /// Waits for the `analysis` event of a window.
    @discardableResult
    func waitForAnalysis(_ liveID: Int, seq: Int, timeout: Double = 30) async throws -> [String: Any] {
        try await follow.wait("analysis of live \(liveID) window \(seq)", timeout: timeout) {
            $0["type"] as? String == "analysis" && $0["live_id"] as? Int == liveID && $0["seq"] as? Int == seq
        }.event
    }

    /// Waits for the `alert` event of a window.
    @discardableResult
    func waitForAlert(_ liveID: Int, seq: Int, timeout: Double = 30) async throws -> [String: Any] {
        try await follow.wait("alert for live \(liveID) window \(seq)", timeout: timeout) {
            $0["type"] as? String == "alert" && $0["live_id"] as? Int == liveID && $0["seq"] as? Int == seq
        }.event
    }

    /// Waits until no window of the live waits for the analyzer (failed ones included: they have
    /// no `analysis` event to await).
    func waitUntilJudged(_ liveID: Int, timeout: Double = 30) async throws {
        try await eventually("every window of live \(liveID) judged", timeout: timeout) {
            try await database.psql("SELECT count(*) FROM transcripts WHERE live_id = \(liveID) AND analysis_state = 'pending'") == "0"
        }
    }

    /// The live's rows of `analyses` (what `live show` does not show: mode, attempts, raw reply…).
    func analysisRows(_ liveID: Int) async throws -> [[String: Any]] {
        let text = try await database.psql("""
            SELECT coalesce(json_agg(a ORDER BY a.seq), '[]') FROM (
                SELECT n.id, n.seq, n.status, n.category, n.risk_score, n.mode, n.attempts, n.raw_reply, n.error,
                       n.cached_from, n.model, n.prompt_sha256, n.text_hash, t.analysis_state
                FROM analyses n JOIN transcripts t ON t.id = n.transcript_id WHERE n.live_id = \(liveID)) a
            """)
        guard let rows = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]] else {
            throw HarnessError("analyses of live \(liveID): \(text)")
        }
        return rows
    }

    /// `tttctl live show ID --json`'s analyses, in window order.
    func analyses(_ liveID: Int) async throws -> [[String: Any]] {
        let result = try await daemon.ctl(["live", "show", String(liveID), "--json"])
        guard result.status == 0, let live = try result.json() as? [String: Any],
              let analyses = live["analyses"] as? [[String: Any]] else {
            throw HarnessError("tttctl live show \(liveID): \(result)")
        }
        return analyses
    }

    /// `tttctl alerts --json` (newest first).
    func alerts(_ arguments: [String] = [], as user: String? = nil) async throws -> [[String: Any]] {
        let result = try await daemon.ctl(["alerts", "--json"] + arguments, as: user)
        guard result.status == 0, let list = try result.json() as? [[String: Any]] else {
            throw HarnessError("tttctl alerts: \(result)")
        }
        return list
    }

    /// `tttctl status --json`.
    func status() async throws -> [String: Any] {
        let result = try await daemon.ctl(["status", "--json"])
        guard result.status == 0, let object = try result.json() as? [String: Any] else {
            throw HarnessError("tttctl status: \(result)")
        }
        return object
    }
}
