import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The repository's root (scripts/ lives there).
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

struct SinkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Value
    init(_ value: Value) { stored = value }
    var value: Value { lock.withLock { stored } }
    func mutate<T>(_ body: (inout Value) -> T) -> T { lock.withLock { body(&stored) } }
}

/// scripts/smtp-sink's Python environment, created once per test process when missing
/// (`scripts/smtp-sink --setup-only`: aiosmtpd from PyPI into .run/smtp-venv, a few seconds).
private let environmentReady: Task<Void, any Error> = Task {
    let result = try await runCommand(repositoryRoot.appendingPathComponent("scripts/smtp-sink").path, ["--setup-only"])
    guard result.status == 0 else { throw SinkError("scripts/smtp-sink --setup-only failed: \(result.stderr)") }
}

/// A real SMTP server (scripts/smtp-sink: aiosmtpd) on a free port of 127.0.0.1, keeping what it
/// accepts in a temporary directory. It exits when this process closes its standard input (the
/// lifeline), so that it never outlives the test process, however that ends.
final class SMTPSink: @unchecked Sendable {
    let port: Int
    let maildir: URL
    /// The self-signed certificate to trust, when the sink speaks TLS.
    let caFile: String?
    private let process: Process
    private let lifeline: Pipe
    private let output: Locked<String>

    private init(port: Int, maildir: URL, caFile: String?, process: Process, lifeline: Pipe, output: Locked<String>) {
        self.port = port
        self.maildir = maildir
        self.caFile = caFile
        self.process = process
        self.lifeline = lifeline
        self.output = output
    }

    static func start(_ arguments: [String] = [], environment: [String: String] = [:]) async throws -> SMTPSink {
        try await environmentReady.value
        let maildir = FileManager.default.temporaryDirectory.appendingPathComponent("tttd-smtp-sink-\(UUID().uuidString)")
        let process = Process()
        process.executableURL = repositoryRoot.appendingPathComponent("scripts/smtp-sink")
        process.arguments = ["--listen", "127.0.0.1:0", "--maildir", maildir.path, "--exit-on-stdin-eof"] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let lifeline = Pipe()
        // Not inherited by other children: they would hold the line open.
        _ = fcntl(lifeline.fileHandleForWriting.fileDescriptor, F_SETFD, FD_CLOEXEC)
        process.standardInput = lifeline.fileHandleForReading
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        try? lifeline.fileHandleForReading.close()
        let output = Locked("")
        let reader = out.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { return }
                output.mutate { $0 += String(decoding: chunk, as: UTF8.self) }
            }
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            let text = output.value
            if let line = text.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }),
               let port = Int(line.split(separator: ":").last ?? "") {
                let caFile = text.split(separator: "\n").first { $0.hasPrefix("cafile ") }.map { String($0.dropFirst(7)) }
                return SMTPSink(port: port, maildir: maildir, caFile: caFile, process: process, lifeline: lifeline, output: output)
            }
            if !process.isRunning { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        process.terminate()
        throw SinkError("scripts/smtp-sink did not start: \(output.value)")
    }

    /// What the sink printed (refusals, acceptances, AUTH outcomes).
    var log: String { output.value }

    /// The messages accepted so far (the sink's NNNN.json records, in order).
    func messages() throws -> [[String: Any]] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: maildir.path)) ?? []
        return try names.filter { $0.hasSuffix(".json") }.sorted().map { name in
            let data = try Data(contentsOf: maildir.appendingPathComponent(name))
            return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        }
    }

    /// The raw bytes of accepted message `n` (1-based), as received after DATA.
    func raw(_ n: Int) throws -> Data {
        try Data(contentsOf: maildir.appendingPathComponent(String(format: "%04d.eml", n)))
    }

    func stop() async {
        try? lifeline.fileHandleForWriting.close()
        let pid = process.processIdentifier
        // It exits at the end of its input; one that does not within 5 s is killed.
        let killer = DispatchWorkItem { kill(pid, SIGKILL) }
        DispatchQueue.global().asyncAfter(deadline: .now() + 5, execute: killer)
        _ = await exitStatus(of: process)
        killer.cancel()
        try? FileManager.default.removeItem(at: maildir)
    }
}

/// Runs `body` with a fresh sink, stopped afterwards.
func withSink(_ arguments: [String] = [], environment: [String: String] = [:],
              _ body: (SMTPSink) async throws -> Void) async throws {
    let sink = try await SMTPSink.start(arguments, environment: environment)
    do {
        try await body(sink)
    } catch {
        await sink.stop()
        throw error
    }
    await sink.stop()
}
