import CShims
import Foundation
import NIOCore
import NIOPosix

/// Starts child processes (ffmpeg) that cannot outlive tttd. The parent-death signal is tied to the
/// thread that forks, so every fork happens on one thread of our own that lives as long as tttd.
public final class ProcessSpawner: Sendable {
    private let thread: NIOThreadPool

    public init() {
        thread = NIOThreadPool(numberOfThreads: 1)
        thread.start()
    }

    /// A started child: its pid, and the read ends of its stdout and stderr pipes (ours to close).
    public struct Spawned: Sendable {
        public var process: ChildProcess
        public var stdout: CInt
        public var stderr: CInt
    }

    public struct SpawnError: Error, CustomStringConvertible {
        public var description: String
    }

    public func spawn(_ executable: String, arguments: [String]) async throws -> Spawned {
        var out: [CInt] = [0, 0]
        var err: [CInt] = [0, 0]
        guard ttt_pipe_cloexec(&out) == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        guard ttt_pipe_cloexec(&err) == 0 else {
            close(out[0]); close(out[1])
            throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))")
        }
        let (outWrite, errWrite) = (out[1], err[1])
        // Not tttd's configuration: TTTD_* may carry secrets (TTTD_SECRETS_*, a password in
        // TTTD_DATABASE_URL), and a child has no use for the credentials directory either.
        let environment = ProcessInfo.processInfo.environment
            .filter { !$0.key.hasPrefix("TTTD_") && $0.key != "CREDENTIALS_DIRECTORY" }
            .map { "\($0.key)=\($0.value)" }
        let pid: pid_t = try await thread.runIfActive {
            withCStrings([executable] + arguments) { argv in
                withCStrings(environment) { envp in ttt_spawn(executable, argv, envp, outWrite, errWrite) }
            }
        }
        close(out[1])
        close(err[1])
        guard pid > 0 else {
            close(out[0]); close(err[0])
            throw SpawnError(description: "\(executable): \(String(cString: strerror(-pid)))")
        }
        return Spawned(process: ChildProcess(pid: pid), stdout: out[0], stderr: err[0])
    }

    /// The absolute path of a program found in PATH, or nil.
    public static func locate(_ name: String) -> String? {
        if name.contains("/") { return access(name, X_OK) == 0 ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }
}

/// A running child. Reaped by polling (tttd installs no SIGCHLD handler of its own).
public struct ChildProcess: Sendable {
    public let pid: pid_t

    public func signal(_ signal: CInt) {
        kill(pid, signal)
    }

    /// Waits for the child to end and returns its exit code (128 + signal when a signal ended it).
    /// After `grace`, SIGKILL: a stuck child does not hold a pipeline up.
    public func wait(grace: Duration = .seconds(5)) async -> Int {
        let started = ContinuousClock.now
        var killed = false
        var status: CInt = 0
        while true {
            let done = ttt_reap(pid, &status)
            if done != 0 { return done == 1 ? Int(status) : -1 }
            if !killed && (Task.isCancelled || ContinuousClock.now - started > grace) {
                kill(pid, SIGKILL)
                killed = true
            }
            if Task.isCancelled { usleep(2_000) } else { try? await Task.sleep(for: .milliseconds(20)) }
        }
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
    let pointers = strings.map { strdup($0) } + [nil]
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
