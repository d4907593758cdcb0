import Foundation
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TTTDomain

/// One ffmpeg reading a live's stream and writing 16 kHz mono s16le PCM to a pipe, for as long as
/// the stream lasts. Ends when ffmpeg exits, when no audio came for `stallTimeout` (ffmpeg is then
/// killed), or when the calling task is cancelled (ffmpeg gets SIGTERM).
public struct FFmpegCapture: Sendable {
    public struct Outcome: Sendable {
        /// Short, for the log and the `reconnecting` state: "ffmpeg exited with status 1: <last line>".
        public var reason: String
        public var bytes: Int
        public var stalled: Bool
        public var exitCode: Int?
    }

    let spawner: ProcessSpawner
    let executable: String
    let stallTimeout: Duration
    let logger: Logger

    public init(spawner: ProcessSpawner, executable: String, stallTimeout: Duration = .seconds(10), logger: Logger) {
        self.spawner = spawner
        self.executable = executable
        self.stallTimeout = stallTimeout
        self.logger = logger
    }

    static func arguments(url: String) -> [String] {
        ["-nostdin", "-hide_banner", "-loglevel", "warning",
         // Fail a dead connection inside ffmpeg too; tttd's own stall timer is the first to act.
         "-rw_timeout", "15000000",
         // Probing 1 s instead of the default 5 s starts (and restarts) capture 4 s sooner.
         "-analyzeduration", "1000000",
         "-i", url,
         "-vn", "-sn", "-dn", "-ac", "1", "-ar", "16000", "-acodec", "pcm_s16le", "-f", "s16le", "pipe:1"]
    }

    /// Runs one ffmpeg; `onAudio` gets the PCM bytes in order, on the calling task.
    public func run(url: String, onAudio: (ByteBuffer) async -> Void) async -> Outcome {
        let spawned: ProcessSpawner.Spawned
        do {
            spawned = try await spawner.spawn(executable, arguments: Self.arguments(url: url))
        } catch {
            return Outcome(reason: "ffmpeg did not start: \(error)", bytes: 0, stalled: false, exitCode: nil)
        }
        let process = spawned.process
        let watch = Watch()
        let tail = StderrTail()
        let logger = self.logger
        logger.debug("ffmpeg started", metadata: ["pid": "\(process.pid)", "stream": "\(Self.redacted(url))"])

        let bytes = await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await Self.readStderr(spawned.stderr, into: tail, logger: logger) }
                group.addTask { await Self.watchForStall(watch, process: process, timeout: stallTimeout) }
                let count = await Self.readAudio(spawned.stdout, watch: watch, onAudio: onAudio)
                watch.finished()
                group.cancelAll()
                return count
            }
        } onCancel: {
            process.signal(SIGTERM)
        }
        let status = await process.wait()
        let stalled = watch.stalled
        let reason: String
        if stalled {
            reason = "no audio for \(Int(stallTimeout.asSeconds)) s (ffmpeg killed)"
        } else if Task.isCancelled {
            reason = "stopped"
        } else {
            let last = tail.lines.last.map { ": \($0)" } ?? ""
            reason = status == 0 ? "stream ended\(last)" : "ffmpeg exited with status \(status)\(last)"
        }
        logger.debug("ffmpeg ended", metadata: ["pid": "\(process.pid)", "status": "\(status)", "bytes": "\(bytes)",
                                                "stderr": "\(tail.lines.joined(separator: " | "))"])
        return Outcome(reason: reason, bytes: bytes, stalled: stalled, exitCode: status)
    }

    private static func readAudio(_ fd: CInt, watch: Watch, onAudio: (ByteBuffer) async -> Void) async -> Int {
        var total = 0
        do {
            let channel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .takingOwnershipOfDescriptor(input: fd) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            try await channel.executeThenClose { inbound, _ in
                for try await buffer in inbound {
                    watch.touch()
                    total += buffer.readableBytes
                    await onAudio(buffer)
                }
            }
        } catch {
            // A read error ends the capture like an exit would; the process status tells the rest.
        }
        return total
    }

    private static func readStderr(_ fd: CInt, into tail: StderrTail, logger: Logger) async {
        do {
            let channel = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .takingOwnershipOfDescriptor(input: fd) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    }
                }
            try await channel.executeThenClose { inbound, _ in
                for try await buffer in inbound {
                    for line in String(buffer: buffer).split(whereSeparator: \.isNewline) where !line.isEmpty {
                        let text = redactURLs(String(line.prefix(300)))
                        tail.append(text)
                        logger.debug("ffmpeg: \(text)")
                    }
                }
            }
        } catch {}
    }

    private static func watchForStall(_ watch: Watch, process: ChildProcess, timeout: Duration) async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: .milliseconds(500)) } catch { return }
            if watch.silentFor > timeout {
                watch.markStalled()
                process.signal(SIGKILL)
                return
            }
        }
    }

    /// Host and path only: a pull URL's query carries its signature.
    static func redacted(_ url: String) -> String {
        guard let components = URLComponents(string: url) else { return "(stream)" }
        return "\(components.host ?? "")\(components.path)"
    }

    static func redactURLs(_ text: String) -> String {
        text.split(separator: " ", omittingEmptySubsequences: false).map { word in
            word.contains("://") ? redacted(String(word)) : String(word)
        }.joined(separator: " ")
    }

    /// When audio last came, shared with the stall watcher.
    final class Watch: Sendable {
        private let state = Mutex<(last: ContinuousClock.Instant, stalled: Bool, done: Bool)>((.now, false, false))
        func touch() { state.withLock { $0.last = .now } }
        func finished() { state.withLock { $0.done = true } }
        func markStalled() { state.withLock { if !$0.done { $0.stalled = true } } }
        var stalled: Bool { state.withLock { $0.stalled } }
        var silentFor: Duration { state.withLock { $0.done ? .zero : ContinuousClock.now - $0.last } }
    }

    /// ffmpeg's last stderr lines, for the failure reason.
    final class StderrTail: Sendable {
        private let kept = Mutex<[String]>([])
        func append(_ line: String) {
            kept.withLock {
                $0.append(line)
                if $0.count > 5 { $0.removeFirst($0.count - 5) }
            }
        }
        var lines: [String] { kept.withLock { $0 } }
    }
}
