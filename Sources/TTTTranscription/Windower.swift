import Foundation
import TTTDomain

/// Cuts a live's PCM stream into windows for the ASR (ASR.md "What follows for tttd"): near the
/// target length, at a pause, between half and twice the target, and tiling the audio exactly.
///
/// The voice-activity detector is the short-term energy of 20 ms frames against a noise floor that
/// follows the stream (the 10th percentile of the last 8 s of frames): a steady background, loud
/// or not, sits at the floor; speech rises well above it.
public struct Windower: Sendable {
    static let frameLength = 320                 // 20 ms at 16 kHz
    static let floorDB: Float = -70              // dBFS: digital silence and dither count as this
    static let quietMargin: Float = 6            // dB above the floor: a pause
    static let speechMargin: Float = 12          // dB above the floor: speech, not a steady background
    static let minimumSpeechFrames = 15          // 300 ms of speech makes a window worth sending
    static let longPause = 10                    // 200 ms: a pause between sentences
    static let speechContext = 4                 // 80 ms kept around speech sent to the ASR

    private let targetFrames: Int
    private let minFrames: Int
    private let maxFrames: Int

    /// Timeline position of `buffer[windowOffset]`, the first sample of the current window.
    private var start: Int64
    /// The current window's samples from `windowOffset` on (the prefix before it was cut off
    /// during this `append` and is dropped once at its end, so that one call copies once).
    private var buffer: [Int16] = []
    private var windowOffset = 0
    /// dBFS of each complete frame of the current window.
    private var levels: [Float] = []
    /// Consecutive quiet frames up to the latest one.
    private var quietRun = 0
    private var floor = NoiseFloor()

    /// `target` is the length to aim for; windows are cut between half and twice it.
    public init(target: Duration, startSample: Int64 = 0) {
        let frames = Int((target.asSeconds * Double(PCM.sampleRate) / Double(Self.frameLength)).rounded())
        targetFrames = max(1, frames)
        minFrames = max(1, targetFrames / 2)
        maxFrames = 2 * targetFrames
        start = startSample
        buffer.reserveCapacity(maxFrames * Self.frameLength + 8 * 1024)
        levels.reserveCapacity(maxFrames + 1)
    }

    /// Where the next window will start.
    public var position: Int64 { start }

    /// Appends captured PCM; returns the windows it completed, in order.
    public mutating func append(_ samples: UnsafeBufferPointer<Int16>) -> [AudioWindow] {
        buffer.append(contentsOf: samples)
        var windows: [AudioWindow] = []
        while windowOffset + (levels.count + 1) * Self.frameLength <= buffer.count {
            if let window = processFrame() { windows.append(window) }
        }
        if windowOffset > 0 {
            buffer.removeSubrange(..<windowOffset)
            windowOffset = 0
        }
        return windows
    }

    public mutating func append(_ samples: [Int16]) -> [AudioWindow] {
        samples.withUnsafeBufferPointer { append($0) }
    }

    /// Ends the current window now (end of stream, or before a capture gap); nil when nothing is buffered.
    public mutating func flush() -> AudioWindow? {
        let count = buffer.count - windowOffset
        guard count > 0 else { return nil }
        let window = AudioWindow(startSample: start, samples: Array(buffer[windowOffset...]),
                                 voiced: isVoiced(levels[...]))
        start += Int64(count)
        buffer.removeAll(keepingCapacity: true)
        windowOffset = 0
        levels.removeAll(keepingCapacity: true)
        quietRun = 0
        return window
    }

    /// Moves the timeline forward by a gap that was not captured (call after flush()).
    public mutating func skip(samples: Int64) {
        precondition(buffer.count == windowOffset, "Windower.skip with audio buffered: flush() first")
        precondition(samples >= 0, "Windower.skip by a negative gap")
        start += samples
        quietRun = 0
    }

    // MARK: Cutting

    private mutating func processFrame() -> AudioWindow? {
        let offset = windowOffset + levels.count * Self.frameLength
        let level = buffer.withUnsafeBufferPointer {
            Self.level(UnsafeBufferPointer(rebasing: $0[offset..<offset + Self.frameLength]))
        }
        floor.add(level)
        levels.append(level)
        quietRun = level <= floor.level + Self.quietMargin ? quietRun + 1 : 0
        guard let cut = cutPoint() else { return nil }
        return cutWindow(frames: cut)
    }

    /// The frame boundary to cut at now, if any.
    private func cutPoint() -> Int? {
        let frames = levels.count
        if frames >= maxFrames { return quietestBoundary() }
        guard frames >= targetFrames else { return nil }
        // Past the target, wait for a sentence pause first, then settle for shorter ones as the
        // maximum nears, so that a window rarely ends inside a word.
        let over = (frames - targetFrames) * 3, span = maxFrames - targetFrames
        let needed = over < span ? Self.longPause : over < 2 * span ? 5 : 2
        guard quietRun >= needed else { return nil }
        let cut = frames - needed / 2   // the middle of the pause: both windows keep some silence
        return cut >= targetFrames ? cut : nil
    }

    /// No usable pause before the maximum: the boundary between min and max whose neighbouring
    /// frames are the quietest, the one nearest the target on a tie.
    private func quietestBoundary() -> Int {
        var best = maxFrames - 1, bestScore = Float.infinity, bestDistance = Int.max
        for cut in minFrames..<maxFrames {
            let score = levels[cut - 1] + levels[cut]
            let distance = abs(cut - targetFrames)
            if score < bestScore || (score == bestScore && distance < bestDistance) {
                best = cut; bestScore = score; bestDistance = distance
            }
        }
        return best
    }

    private mutating func cutWindow(frames: Int) -> AudioWindow {
        let count = frames * Self.frameLength
        let window = AudioWindow(startSample: start, samples: Array(buffer[windowOffset..<windowOffset + count]),
                                 voiced: isVoiced(levels[..<frames]))
        windowOffset += count
        start += Int64(count)
        levels.removeFirst(frames)
        return window
    }

    /// The speech of a window, for the ASR: its frames above the speech threshold with 80 ms of
    /// context on each side, the longer pauses between them left out. Whisper hears the same
    /// words, and the audio sent (and paid for) is the speech, not the live's silences. The window
    /// itself, its place on the timeline and the audio kept for evidence are not changed.
    public func speechOnly(_ samples: [Int16]) -> [Int16] {
        let frameLength = Self.frameLength
        let frames = (samples.count + frameLength - 1) / frameLength
        guard frames > 0 else { return [] }
        let threshold = floor.level + Self.speechMargin
        var keep = [Bool](repeating: false, count: frames)
        samples.withUnsafeBufferPointer { all in
            for frame in 0..<frames where Self.level(UnsafeBufferPointer(
                rebasing: all[(frame * frameLength)..<min(all.count, (frame + 1) * frameLength)])) >= threshold {
                for index in max(0, frame - Self.speechContext)...min(frames - 1, frame + Self.speechContext) {
                    keep[index] = true
                }
            }
        }
        var speech = [Int16]()
        speech.reserveCapacity(samples.count)
        for frame in 0..<frames where keep[frame] {
            speech.append(contentsOf: samples[(frame * frameLength)..<min(samples.count, (frame + 1) * frameLength)])
        }
        return speech
    }

    /// Judged against the floor at the end of the window, so that a background which began
    /// inside it has been learnt by then.
    private func isVoiced(_ frames: ArraySlice<Float>) -> Bool {
        let threshold = floor.level + Self.speechMargin
        var speech = 0
        for level in frames where level >= threshold {
            speech += 1
            if speech >= Self.minimumSpeechFrames { return true }
        }
        return false
    }

    /// Mean-square energy of a frame in dBFS, no lower than the absolute floor.
    static func level(_ frame: UnsafeBufferPointer<Int16>) -> Float {
        var sum: Int64 = 0
        for sample in frame {
            let value = Int32(sample)
            sum += Int64(value * value)
        }
        guard sum > 0 else { return floorDB }
        let meanSquare = Double(sum) / Double(frame.count) / (32768.0 * 32768.0)
        return max(floorDB, Float(10 * log10(meanSquare)))
    }
}

/// The 10th percentile of the last 8 s of frame levels, from a histogram in 0.5 dB steps: O(1) to
/// update and a short scan to read, so it costs little at 50 frames per second per live.
struct NoiseFloor: Sendable {
    static let history = 400                     // frames: 8 s
    static let percentile = 0.1
    static let binsPerDB: Float = 2
    static let binCount = Int(-Windower.floorDB * binsPerDB) + 1

    private var histogram = [Int32](repeating: 0, count: binCount)
    private var recent = [UInt8](repeating: 0, count: history)
    private var next = 0
    private var filled = 0
    /// The floor in dBFS (the lower edge of its bin).
    private(set) var level = Windower.floorDB

    mutating func add(_ level: Float) {
        let bin = UInt8(min(Float(Self.binCount - 1), ((level - Windower.floorDB) * Self.binsPerDB).rounded(.down)))
        if filled == Self.history { histogram[Int(recent[next])] -= 1 } else { filled += 1 }
        recent[next] = bin
        histogram[Int(bin)] += 1
        next = (next + 1) % Self.history
        let rank = max(1, Int(Double(filled) * Self.percentile))
        var seen = 0
        for index in 0..<Self.binCount {
            seen += Int(histogram[index])
            if seen >= rank {
                self.level = Windower.floorDB + Float(index) / Self.binsPerDB
                return
            }
        }
    }
}
