import Foundation
import NIOCore

public struct AudioEncoderError: Error, CustomStringConvertible {
    public let description: String
}

/// Turns an audio file into served FLV audio with one ffmpeg run (mono 16 kHz AAC 32 kb/s: what
/// a transcriber wants, and cheap to serve). ffmpeg runs in a Foundation `Process` whose blocking
/// reads happen on a Dispatch thread, never on the cooperative pool or an event loop.
public struct AudioEncoder: Sendable {
    public let ffmpeg: String

    public init(ffmpeg: String = "ffmpeg") { self.ffmpeg = ffmpeg }

    public func encode(file path: String) async throws -> FLVAudio {
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw AudioEncoderError(description: "audio file \(path) cannot be read")
        }
        return try await encode(input: ["-i", path])
    }

    /// Silence for lives given no audio: a short clip, looped by the streams.
    public func encodeSilence(seconds: Int = 10) async throws -> FLVAudio {
        try await encode(input: ["-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", String(seconds)])
    }

    private func encode(input: [String]) async throws -> FLVAudio {
        let arguments = [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin"] + input
            + ["-vn", "-ac", "1", "-ar", "16000", "-c:a", "aac", "-b:a", "32k", "-f", "flv", "-"]
        let output = try await Self.run(arguments)
        do {
            return try FLVAudio(parsing: ByteBuffer(bytes: output))
        } catch {
            throw AudioEncoderError(description: "ffmpeg output unusable: \(error)")
        }
    }

    private static func run(_ arguments: [String]) async throws -> Data {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                process.arguments = arguments
                let stdout = Pipe()
                let stderr = Pipe()
                process.standardInput = FileHandle.nullDevice
                process.standardOutput = stdout
                process.standardError = stderr
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: AudioEncoderError(description: "cannot start ffmpeg: \(error)"))
                    return
                }
                // `-loglevel error` keeps stderr far below a pipe's capacity, so reading stdout
                // to the end first cannot deadlock.
                let data = stdout.fileHandleForReading.readDataToEndOfFile()
                let errors = stderr.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                if process.terminationStatus == 0 {
                    continuation.resume(returning: data)
                } else {
                    let message = String(decoding: errors, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                    continuation.resume(throwing: AudioEncoderError(
                        description: "ffmpeg exited with \(process.terminationStatus): \(message.suffix(300))"))
                }
            }
        }
    }
}

/// Each audio file is encoded once per process (keyed by path, size and modification date), and
/// the silence once; concurrent requests for the same file share one ffmpeg run.
public actor AudioLibrary {
    private let encoder: AudioEncoder
    private var encoded: [String: Task<FLVAudio, any Error>] = [:]

    public init(encoder: AudioEncoder) { self.encoder = encoder }

    public func audio(file path: String?) async throws -> FLVAudio {
        let key: String
        if let path {
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let size = (attributes?[.size] as? NSNumber)?.int64Value ?? -1
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            key = "\(path)|\(size)|\(modified)"
        } else {
            key = "<silence>"
        }
        if let task = encoded[key] { return try await task.value }
        let encoder = self.encoder
        let task = Task {
            if let path { try await encoder.encode(file: path) } else { try await encoder.encodeSilence() }
        }
        encoded[key] = task
        do {
            return try await task.value
        } catch {
            encoded[key] = nil  // a missing file may appear later: do not cache failures
            throw error
        }
    }
}
