import Foundation

#if canImport(Glibc)
import Glibc
#endif

// Programs run by the tests, without blocking Swift's cooperative threads. All the test targets run
// in one process whose cooperative pool has one thread per core (two here): a test that blocks one
// (a child's output read to the end, `waitUntilExit`, a key made by `openssl`) stalls every other
// test's awaits for as long, and a test of a 300-ms timeout saw 9 s pass.

/// Starts blocking work (a read to end of file, a wait on a condition) on a thread of its own.
/// Not on Dispatch's global queue: on Linux, when all of its threads block it adds one about once
/// a second, so in a full test run (dozens of readers blocked for the life of their process) work
/// queued there waited for tens of seconds — a psql call, or a 1 s wait, took 30.
public func onOwnThread(_ work: @escaping @Sendable () -> Void) {
    Thread.detachNewThread(work)
}

/// A value handed between threads under a happens-before the caller provides (a DispatchGroup, a lock).
public final class Box<T>: @unchecked Sendable {
    public var value: T
    public init(_ value: T) { self.value = value }
}

/// What a finished command printed, and how it ended.
public struct CommandResult: Sendable, CustomStringConvertible {
    /// Its exit status, or 128 + the signal that ended it (as a shell reports it).
    public var status: Int32
    public var output: Data
    public var errors: Data

    public var stdout: String { String(decoding: output, as: UTF8.self) }
    public var stderr: String { String(decoding: errors, as: UTF8.self) }
    public var description: String { "exit \(status)\nstdout: \(stdout)\nstderr: \(stderr)" }
}

/// Runs a program to completion on threads of its own: `input` written to its standard input while
/// both outputs are read (so that no pipe fills up and blocks it), then its end awaited.
public func runCommand(_ executable: String, _ arguments: [String], environment: [String: String]? = nil,
                       input: Data? = nil) async throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe(), inputPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
    return try await withCheckedThrowingContinuation { continuation in
        onOwnThread {
            do {
                try process.run()
            } catch {
                continuation.resume(throwing: error)
                return
            }
            let group = DispatchGroup()
            let output = Box(Data()), errors = Box(Data())
            group.enter()
            onOwnThread { output.value = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
            group.enter()
            onOwnThread { errors.value = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
            if let input {
                try? inputPipe.fileHandleForWriting.write(contentsOf: input)
                try? inputPipe.fileHandleForWriting.close()
            }
            group.wait()
            let status = waitForEnd(of: process)
            continuation.resume(returning: CommandResult(status: status, output: output.value, errors: errors.value))
        }
    }
}

/// Waits until `process` has ended, on a thread of its own; its status as `CommandResult.status`.
public func exitStatus(of process: Process) async -> Int32 {
    await withCheckedContinuation { continuation in
        onOwnThread { continuation.resume(returning: waitForEnd(of: process)) }
    }
}

/// Blocks the calling thread until `process` ends. Not `waitUntilExit`: Foundation on Linux learns
/// that a child ended when a socket the child inherited closes, and a process another test spawns
/// at that moment may inherit the socket too (swift-corelibs-foundation#4795); `waitUntilExit`
/// then spins for ever on a child long gone. `waitid` asks the kernel, and with WNOWAIT leaves the
/// child for Foundation to reap, so that its pid cannot be reused under Foundation's own wait.
public func waitForEnd(of process: Process) -> Int32 {
    var info = siginfo_t()
    while waitid(P_PID, id_t(process.processIdentifier), &info, WEXITED | WNOWAIT) == -1 {
        if errno == EINTR { continue }
        // ECHILD: Foundation reaped it first, so Foundation knows how it ended.
        process.waitUntilExit()
        let status = process.terminationStatus
        return process.terminationReason == .uncaughtSignal ? 128 + status : status
    }
    let status = info._sifields._sigchld.si_status
    return info.si_code == CLD_EXITED ? status : 128 + status
}
