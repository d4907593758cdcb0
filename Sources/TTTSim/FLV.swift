import NIOCore

/// One FLV tag: its type (8 audio, 9 video, 18 script), timestamp (ms) and payload.
public struct FLVTag: Sendable {
    public static let audio: UInt8 = 8

    public let type: UInt8
    public let timestamp: UInt32
    public let data: ByteBuffer
}

public enum FLVError: Error, CustomStringConvertible, Equatable {
    case notFLV
    case truncated
    case noAACSequenceHeader
    case noAudioFrames

    public var description: String {
        switch self {
        case .notFLV: "not an FLV stream"
        case .truncated: "truncated FLV tag"
        case .noAACSequenceHeader: "no AAC sequence header in the FLV"
        case .noAudioFrames: "no audio frames in the FLV"
        }
    }
}

/// An encoded audio track ready to be served to any number of clients: the AAC sequence header
/// and the audio frames with timestamps from 0. Immutable and shared (tags are slices of the one
/// buffer ffmpeg produced), so a client costs only its own cursor.
public struct FLVAudio: Sendable {
    public let sequenceHeader: FLVTag
    public let frames: [FLVTag]
    /// Length of one loop: last frame's timestamp plus one frame duration.
    public let durationMs: Int

    /// Keeps the audio tags of an FLV file (ffmpeg's `-f flv` output); the script tag is dropped
    /// because its `duration` is wrong for a live stream.
    public init(parsing bytes: ByteBuffer) throws(FLVError) {
        var buffer = bytes
        guard buffer.readableBytes >= 13,
              buffer.getString(at: buffer.readerIndex, length: 3) == "FLV",
              let headerSize = buffer.getInteger(at: buffer.readerIndex + 5, as: UInt32.self)
        else { throw .notFLV }
        buffer.moveReaderIndex(forwardBy: Int(headerSize) + 4)

        var sequenceHeader: FLVTag?
        var frames: [FLVTag] = []
        while buffer.readableBytes > 0 {
            guard buffer.readableBytes >= 11,
                  let type = buffer.readInteger(as: UInt8.self),
                  let size = buffer.readUInt24(),
                  let low = buffer.readUInt24(),
                  let high = buffer.readInteger(as: UInt8.self),
                  buffer.readUInt24() != nil,
                  let data = buffer.readSlice(length: Int(size)),
                  buffer.readInteger(as: UInt32.self) != nil
            else { throw .truncated }
            // AAC audio: first payload byte 0xAx (sound format 10), second 0 = config, 1 = frame.
            guard type == FLVTag.audio, data.readableBytes >= 2,
                  let format = data.getInteger(at: data.readerIndex, as: UInt8.self), format >> 4 == 10,
                  let packetType = data.getInteger(at: data.readerIndex + 1, as: UInt8.self)
            else { continue }
            let tag = FLVTag(type: type, timestamp: UInt32(high) << 24 | low, data: data)
            if packetType == 0 {
                if sequenceHeader == nil { sequenceHeader = tag }
            } else {
                frames.append(tag)
            }
        }
        guard let sequenceHeader else { throw .noAACSequenceHeader }
        guard let first = frames.first, let last = frames.last else { throw .noAudioFrames }

        let base = first.timestamp
        self.sequenceHeader = FLVTag(type: sequenceHeader.type, timestamp: 0, data: sequenceHeader.data)
        self.frames = frames.map { FLVTag(type: $0.type, timestamp: $0.timestamp &- base, data: $0.data) }
        let frameMs = Self.frameDurationMs(sequenceHeader: sequenceHeader.data)
        self.durationMs = Int(last.timestamp &- base) + frameMs
    }

    /// 1024 samples per AAC frame at the rate of the AudioSpecificConfig (5 bits object type,
    /// 4 bits sampling-frequency index).
    static func frameDurationMs(sequenceHeader data: ByteBuffer) -> Int {
        let rates = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350]
        guard let b0 = data.getInteger(at: data.readerIndex + 2, as: UInt8.self),
              let b1 = data.getInteger(at: data.readerIndex + 3, as: UInt8.self)
        else { return 23 }
        let index = Int((b0 & 0x07) << 1 | b1 >> 7)
        guard index < rates.count else { return 23 }
        return max(1, Int((1024.0 * 1000.0 / Double(rates[index])).rounded()))
    }
}

/// Writes FLV: the file header for an audio-only stream and tags with a given timestamp.
public enum FLVWriter {
    /// "FLV", version 1, flags 0x04 (audio only), header length 9, then PreviousTagSize0.
    public static func writeHeader(into buffer: inout ByteBuffer) {
        buffer.writeBytes([0x46, 0x4C, 0x56, 0x01, 0x04, 0x00, 0x00, 0x00, 0x09])
        buffer.writeInteger(UInt32(0))
    }

    public static func write(_ tag: FLVTag, timestamp: UInt32, into buffer: inout ByteBuffer) {
        let size = tag.data.readableBytes
        buffer.writeInteger(tag.type)
        buffer.writeUInt24(UInt32(size))
        buffer.writeUInt24(timestamp & 0xFF_FFFF)
        buffer.writeInteger(UInt8(truncatingIfNeeded: timestamp >> 24))
        buffer.writeUInt24(0)
        buffer.writeImmutableBuffer(tag.data)
        buffer.writeInteger(UInt32(11 + size))
    }
}

extension ByteBuffer {
    fileprivate mutating func readUInt24() -> UInt32? {
        guard let bytes = readBytes(length: 3) else { return nil }
        return UInt32(bytes[0]) << 16 | UInt32(bytes[1]) << 8 | UInt32(bytes[2])
    }

    fileprivate mutating func writeUInt24(_ value: UInt32) {
        writeBytes([UInt8(truncatingIfNeeded: value >> 16), UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)])
    }
}

/// One client's position in a shared `FLVAudio`: hands out frames with output timestamps that
/// continue across loops (loop n adds n × duration), so the client sees one unbroken live.
struct FLVCursor {
    let audio: FLVAudio
    let loop: Bool
    private var index = 0
    private var loops = 0

    init(audio: FLVAudio, loop: Bool) {
        self.audio = audio
        self.loop = loop
    }

    /// True once a non-looping audio has been handed out entirely.
    var finished: Bool { !loop && index >= audio.frames.count }

    private var nextTimestamp: Int { loops * audio.durationMs + Int(audio.frames[index].timestamp) }

    /// Writes every frame whose output timestamp is at most `horizonMs`.
    mutating func write(upTo horizonMs: Int, into buffer: inout ByteBuffer) {
        while !finished, nextTimestamp <= horizonMs {
            FLVWriter.write(audio.frames[index], timestamp: UInt32(truncatingIfNeeded: nextTimestamp), into: &buffer)
            index += 1
            if index == audio.frames.count, loop {
                index = 0
                loops += 1
            }
        }
    }
}
