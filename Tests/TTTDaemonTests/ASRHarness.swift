import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

// What the transcription tests need besides Harness.swift and SimHarness.swift: the real
// scripts/asr-server (one per test process), the fault-injecting proxy in front of it
// (Fixtures/asr_faults.py), speech made with espeak-ng, a `follow --json` reader that waits for
// events matching a predicate, and a look at tttd's child processes in /proc.

/// Neither the asr-server nor a proxy may outlive the test process, however it ends (Swift Testing
/// has no "after all tests" hook, and a crash or a kill -9 runs no deinit). Each is started with
/// its standard input on a pipe whose write end only this process holds: when the process is gone,
/// the read end sees end of file and the child exits (the proxy watches its stdin itself; the
/// asr-server, which has no such option, runs under a small shell that kills it then).
private final class LifelinePipe: @unchecked Sendable {
    let pipe = Pipe()
    init() {
        // Not inherited by the other children (tttd, tttsim, ffmpeg): they would keep the line open.
        _ = fcntl(pipe.fileHandleForWriting.fileDescriptor, F_SETFD, FD_CLOEXEC)
    }
}

/// Reads a child's output line by line on a Dispatch thread until a line contains `marker`;
/// then keeps draining it (a full pipe would block the child). Returns that line, or nil at EOF.
private func awaitLine(containing marker: String, from handle: FileHandle, timeout: Double,
                       transcript: Box<String>) async -> String? {
    let lock = NSLock()
    return await withCheckedContinuation { (continuation: CheckedContinuation<String?, Never>) in
        let resumed = Box(false)
        let finish: @Sendable (String?) -> Void = { value in
            lock.withLock {
                if resumed.value { return }
                resumed.value = true
                continuation.resume(returning: value)
            }
        }
        onOwnThread {
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return finish(nil) }
                lock.withLock {
                    transcript.value = String((transcript.value + String(decoding: chunk, as: UTF8.self)).suffix(50_000))
                }
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

/// The real `scripts/asr-server --model tiny.en`, started on first use and shared by every test of
/// the process (loading the model and warming it up costs seconds and a core).
actor ASRServer {
    static let shared = ASRServer()

    private var starting: Task<String, any Error>?
    private var process: Process?
    private var lifeline: LifelinePipe?
    private let output = Box("")

    /// The server's base URL (`http://127.0.0.1:PORT`, without `/v1`).
    func url() async throws -> String {
        if let starting { return try await starting.value }
        let task = Task { try await self.launch() }
        starting = task
        return try await task.value
    }

    private func launch() async throws -> String {
        let script = TestEnvironment.repoRoot.appendingPathComponent("scripts/asr-server").path
        // `make test` runs `scripts/asr-server --setup-only` first; a test must not start a 340 MB install.
        let venv = ProcessInfo.processInfo.environment["TTT_ASR_VENV"].flatMap { $0.isEmpty ? nil : $0 }
            ?? TestEnvironment.repoRoot.appendingPathComponent(".run/asr-venv").path
        guard FileManager.default.isExecutableFile(atPath: venv + "/bin/python") else {
            throw HarnessError("the asr-server environment \(venv) is missing: run `scripts/asr-server --setup-only` (make test does)")
        }
        let lifeline = LifelinePipe()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        // The server in the background; the shell waits for the end of its stdin (this process gone),
        // then kills it. The server's own stdin is /dev/null.
        process.arguments = ["-c", #""$@" </dev/null & child=$!; cat >/dev/null; kill -KILL "$child" 2>/dev/null; wait"#,
                             "asr-server-lifeline", script, "--listen", "127.0.0.1:0", "--model", "tiny.en"]
        process.standardInput = lifeline.pipe.fileHandleForReading
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        try? lifeline.pipe.fileHandleForReading.close()
        self.process = process
        self.lifeline = lifeline
        let line = await awaitLine(containing: "listening on http://", from: errors.fileHandleForReading,
                                   timeout: 180, transcript: output)
        guard let line, let range = line.range(of: #"http://[0-9.]+:[0-9]+"#, options: .regularExpression) else {
            throw HarnessError("scripts/asr-server did not start: \(output.value)")
        }
        return String(line[range])
    }
}

/// Fixtures/asr_faults.py in front of the shared asr-server: queue failures, count requests.
final class FaultProxy: @unchecked Sendable {
    let process = Process()
    private(set) var baseURL = ""
    private let lifeline = LifelinePipe()
    private let output = Box("")
    private let errors = Pipe()
    private let stdout = Pipe()

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/asr_faults.py").path
    }

    /// Starts a proxy in front of `upstream` (a base URL without `/v1`); with `apiKey`, transcription
    /// requests without that bearer key are answered 401.
    static func start(upstream: String, apiKey: String? = nil) async throws -> FaultProxy {
        let proxy = FaultProxy()
        try await proxy.launch(upstream: upstream, apiKey: apiKey)
        return proxy
    }

    private func launch(upstream: String, apiKey: String?) async throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.script, "--upstream", upstream, "--listen", "127.0.0.1:0", "--watch-stdin"]
            + (apiKey.map { ["--api-key", $0] } ?? [])
        process.standardInput = lifeline.pipe.fileHandleForReading
        process.standardOutput = stdout
        process.standardError = errors
        try process.run()
        try? lifeline.pipe.fileHandleForReading.close()
        let errorHandle = errors.fileHandleForReading
        let log = output
        onOwnThread {
            while true {
                let chunk = errorHandle.availableData
                if chunk.isEmpty { return }
                log.value = String((log.value + String(decoding: chunk, as: UTF8.self)).suffix(20_000))
            }
        }
        let line = await awaitLine(containing: "http://", from: stdout.fileHandleForReading, timeout: 30, transcript: Box(""))
        guard let line else { throw HarnessError("asr_faults.py did not start: \(output.value)") }
        baseURL = line.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Queues the failures for the next transcription requests (replacing what was queued).
    func queue(_ json: String) async throws {
        let result = try await runCommand("/usr/bin/curl", ["-sf", "-X", "POST", "-H", "Content-Type: application/json",
                                                            "--data-binary", json, baseURL + "/_faults"])
        guard result.status == 0 else { throw HarnessError("cannot queue faults: \(result)") }
    }

    /// `POST /_release`: the held requests (and the holds still queued) go through.
    func release() async throws {
        let result = try await runCommand("/usr/bin/curl", ["-sf", "-X", "POST", baseURL + "/_release"])
        guard result.status == 0 else { throw HarnessError("cannot release the held requests: \(result)") }
    }

    /// `GET /_stats`: requests, faults, forwarded, queued, held, by_kind, log.
    func stats() async throws -> [String: Any] {
        let result = try await runCommand("/usr/bin/curl", ["-sf", baseURL + "/_stats"])
        guard result.status == 0, let object = try result.json() as? [String: Any] else {
            throw HarnessError("cannot read the proxy's stats: \(result)")
        }
        return object
    }

    /// The proxy's request log on stderr (for failure messages).
    var log: String { output.value }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Speech and silence files for tttsim, made once (deterministic, so kept between runs).
enum TestAudio {
    /// Three sentences with pauses (about 12 s). tiny.en hears "fox", "evening", "weather" reliably
    /// ("moderators" comes back as "motherators").
    static let sentences = [
        "The quick brown fox jumps over the lazy dog.",
        "Moderators watch live streams every evening.",
        "The weather was sunny and warm all day long.",
    ]

    private static let directory = "/tmp/ttt-test-audio-\(getuid())"

    /// espeak-ng speech, 1.2 s pauses between the sentences and 1.5 s at the end (the loop's seam).
    static func speech() async throws -> String {
        let path = directory + "/speech-v1.wav"
        let ssml = "<speak>" + sentences.map { $0 + " <break time=\"1200ms\"/> " }.joined() + "<break time=\"300ms\"/></speak>"
        return try await make(path) { temporary in
            try await runCommand("/usr/bin/espeak-ng", ["-m", "-v", "en-us", "-s", "150", "-w", temporary, ssml])
        }
    }

    /// Ten seconds of digital silence (ffmpeg's anullsrc: espeak-ng of nothing is not silence).
    static func silence() async throws -> String {
        let path = directory + "/silence-v1.wav"
        return try await make(path) { temporary in
            try await runCommand("/usr/bin/env", ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
                                                  "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "10",
                                                  "-f", "wav", "-y", temporary])
        }
    }

    /// Written under a temporary name and renamed: concurrent test processes never see half a file.
    private static func make(_ path: String, _ generate: (String) async throws -> CommandResult) async throws -> String {
        if FileManager.default.fileExists(atPath: path) { return path }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let temporary = path + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        let result = try await generate(temporary)
        guard result.status == 0, FileManager.default.fileExists(atPath: temporary) else {
            try? FileManager.default.removeItem(atPath: temporary)
            throw HarnessError("cannot make \(path): \(result)")
        }
        guard rename(temporary, path) == 0 else { throw HarnessError("rename to \(path) failed") }
        return path
    }
}

extension SimProcess {
    /// Goes live streaming `audio` (a WAV file) in real time, looped when `loop`.
    func goLive(_ username: String, title: String = "Good evening", audio: String?, loop: Bool = true) async throws -> String {
        var body: [String: Any] = ["username": username, "title": title, "loop": loop]
        if let audio { body["audio"] = audio }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: body), as: UTF8.self)
        let answer = try await request("POST", "/_sim/lives", json: json)
        guard answer.status / 100 == 2, let object = try JSONSerialization.jsonObject(with: Data(answer.body.utf8)) as? [String: Any],
              let room = object["room_id"] as? String else {
            throw HarnessError("cannot start a live for \(username): \(answer)")
        }
        return room
    }
}

/// `tttctl follow --json` in the background, keeping every event; tests wait for the first event
/// (from a given position on) that matches a predicate.
final class EventFollower: @unchecked Sendable {
    let process = Process()
    private let output = Pipe()
    private let errors = Pipe()
    private let condition = NSCondition()
    private var lines = [String]()
    private var ended = false
    private var errorText = ""

    /// Returns once tttd has the subscription: every event committed after that reaches it.
    init(daemon: DaemonProcess, arguments: [String] = ["--all"]) async throws {
        process.executableURL = URL(fileURLWithPath: TestEnvironment.tttctl)
        process.arguments = ["follow", "--json", "--socket", daemon.socketPath] + arguments
        process.standardOutput = output
        process.standardError = errors
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let errorHandle = errors.fileHandleForReading
        onOwnThread { [weak self] in
            while true {
                let chunk = errorHandle.availableData
                guard let self, !chunk.isEmpty else { return }
                self.condition.withLock { self.errorText = String((self.errorText + String(decoding: chunk, as: UTF8.self)).suffix(4000)) }
            }
        }
        let handle = output.fileHandleForReading
        onOwnThread { [weak self] in
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                guard let self else { return }
                if chunk.isEmpty {
                    self.condition.withLock { self.ended = true; self.condition.broadcast() }
                    return
                }
                buffer.append(chunk)
                var complete = [String]()
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    complete.append(String(decoding: buffer[..<newline], as: UTF8.self))
                    buffer.removeSubrange(...newline)
                }
                if !complete.isEmpty {
                    self.condition.withLock { self.lines += complete; self.condition.broadcast() }
                }
            }
        }
        try await daemon.waitForFollower(pid: process.processIdentifier)
    }

    private static func parse(_ line: String) -> [String: Any] {
        ((try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any]) ?? [:]
    }

    /// Whether `tttctl follow` is still running, and what it wrote on stderr: for failure messages.
    var state: String {
        let stderr = condition.withLock { errorText }
        return "tttctl follow \(process.isRunning ? "running" : "ended (status \(process.terminationStatus))")"
            + (stderr.isEmpty ? "" : ", stderr: \(stderr)")
    }

    /// Every event so far, in order.
    var events: [[String: Any]] { condition.withLock { lines }.map(Self.parse) }

    /// Events so far of one type (and one live when given).
    func events(_ type: String, liveID: Int? = nil) -> [[String: Any]] {
        events.filter { $0["type"] as? String == type && (liveID == nil || $0["live_id"] as? Int == liveID) }
    }

    /// Waits for the first event at or after position `start` that matches; returns it and its position.
    @discardableResult
    func wait(_ what: String, from start: Int = 0, timeout: Double = 60,
              _ matches: @escaping @Sendable ([String: Any]) -> Bool) async throws -> (event: [String: Any], index: Int) {
        let index: Int? = await withCheckedContinuation { continuation in
            onOwnThread {
                let deadline = Date().addingTimeInterval(timeout)
                self.condition.lock()
                defer { self.condition.unlock() }
                var checked = start
                while true {
                    while checked < self.lines.count {
                        if matches(Self.parse(self.lines[checked])) { return continuation.resume(returning: checked) }
                        checked += 1
                    }
                    if self.ended || !self.condition.wait(until: deadline) { return continuation.resume(returning: nil) }
                }
            }
        }
        guard let index else {
            let recent = condition.withLock { lines.suffix(40) }.joined(separator: "\n")
            throw HarnessError("no \(what) within \(timeout) s (\(state)); last events:\n\(recent)")
        }
        return (Self.parse(condition.withLock { lines[index] }), index)
    }

    /// Waits for a `pipeline_state` event of a live with this state.
    @discardableResult
    func waitForState(_ state: String, liveID: Int, from start: Int = 0, timeout: Double = 60) async throws -> (event: [String: Any], index: Int) {
        try await wait("pipeline_state \(state) for live \(liveID)", from: start, timeout: timeout) {
            $0["type"] as? String == "pipeline_state" && $0["live_id"] as? Int == liveID && $0["state"] as? String == state
        }
    }

    /// Waits for a `transcript` event of a live that matches.
    @discardableResult
    func waitForTranscript(_ what: String, liveID: Int, from start: Int = 0, timeout: Double = 60,
                           _ matches: @escaping @Sendable ([String: Any]) -> Bool = { _ in true }) async throws -> (event: [String: Any], index: Int) {
        try await wait("transcript (\(what)) for live \(liveID)", from: start, timeout: timeout) {
            $0["type"] as? String == "transcript" && $0["live_id"] as? Int == liveID && matches($0)
        }
    }

    deinit {
        if process.isRunning { process.terminate() }
    }
}

/// A process as /proc shows it.
struct ProcInfo: Sendable {
    var pid: Int32
    var name: String
    /// R, S, D, Z, T, …
    var state: Character
    var parent: Int32
}

enum Proc {
    /// /proc/PID/stat, nil when the process is gone.
    static func info(_ pid: Int32) -> ProcInfo? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")") else { return nil }
        let name = String(text[text.index(after: open)..<close])
        let rest = text[text.index(close, offsetBy: 2)...].split(separator: " ")
        guard rest.count >= 2, let state = rest[0].first, let parent = Int32(rest[1]) else { return nil }
        return ProcInfo(pid: pid, name: name, state: state, parent: parent)
    }

    /// Kills an ffmpeg a test stopped (SIGSTOP) if it is still there: never another process that
    /// reused the pid.
    static func killIfStopped(_ pid: Int32) {
        if let info = info(pid), info.name == "ffmpeg", info.state == "T" { kill(pid, SIGKILL) }
    }

    /// The children of `parent` (named `name` when given).
    static func children(of parent: Int32, named name: String? = nil) -> [ProcInfo] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).compactMap(info).filter {
            $0.parent == parent && (name == nil || $0.name == name)
        }
    }
}

/// Polls `condition` every 100 ms until it holds or the deadline passes (for what has no event).
func eventually(_ what: String, timeout: Double = 30, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
        if try await condition() { return }
        if Date() > deadline { throw HarnessError("\(what): not within \(timeout) s") }
        try await Task.sleep(for: .milliseconds(100))
    }
}
