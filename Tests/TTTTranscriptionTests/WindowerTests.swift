import Foundation
import Testing
@testable import TTTTranscription

/// Deterministic signals: a seeded generator, noise, and speech-like bursts (a voiced tone with
/// harmonics under a syllable-rate envelope, plus breath noise).
struct Signal {
    private var state: UInt64
    private(set) var samples: [Int16] = []
    /// Sample ranges of the pauses between bursts.
    private(set) var pauses: [Range<Int>] = []

    init(seed: UInt64) { state = seed }

    mutating func random() -> UInt64 {   // SplitMix64
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    mutating func uniform() -> Double { Double(random() >> 11) / Double(1 << 53) }
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random() % UInt64(range.count)) }

    /// Uniform noise of this RMS (its amplitude is RMS × √3).
    mutating func noise(seconds: Double, rms: Double) {
        for _ in 0..<count(seconds) { append((uniform() * 2 - 1) * rms * 3.0.squareRoot()) }
    }

    mutating func silence(seconds: Double, noiseRMS: Double = 0) {
        let start = samples.count
        if noiseRMS == 0 { samples.append(contentsOf: repeatElement(0, count: count(seconds))) } else { noise(seconds: seconds, rms: noiseRMS) }
        pauses.append(start..<samples.count)
    }

    mutating func burst(seconds: Double, rms: Double, backgroundRMS: Double = 0) {
        let pitch = 110 + uniform() * 120
        for index in 0..<count(seconds) {
            let t = Double(index) / 16_000
            let envelope = 0.55 + 0.45 * sin(2 * .pi * 4 * t)          // syllables: dips of 20 dB
            let voice = sin(2 * .pi * pitch * t) + 0.5 * sin(4 * .pi * pitch * t) + 0.25 * sin(6 * .pi * pitch * t)
            let background = backgroundRMS > 0 ? (uniform() * 2 - 1) * backgroundRMS * 3.0.squareRoot() : 0
            append(rms * 1.2 * envelope * voice + (uniform() * 2 - 1) * rms * 0.05 + background)
        }
    }

    private func count(_ seconds: Double) -> Int { Int(seconds * 16_000) }
    private mutating func append(_ value: Double) { samples.append(Int16(max(-32768, min(32767, value.rounded())))) }
}

private func feed(_ samples: [Int16], target: Duration, chunk: (inout Signal) -> Int, seed: UInt64 = 1) -> (windows: [AudioWindow], last: AudioWindow?) {
    var windower = Windower(target: target)
    var random = Signal(seed: seed)
    var windows: [AudioWindow] = []
    var offset = 0
    while offset < samples.count {
        let end = min(samples.count, offset + chunk(&random))
        windows += windower.append(Array(samples[offset..<end]))
        offset = end
    }
    return (windows, windower.flush())
}

/// Consecutive windows start where the previous one ended.
private func expectTiling(_ windows: [AudioWindow], from start: Int64 = 0) {
    var position = start
    for window in windows {
        #expect(window.startSample == position)
        position = window.endSample
    }
}

@Suite struct WindowerTests {
    static let frame = 320

    @Test func tilesExactlyWhateverTheChunkSizes() {
        var signal = Signal(seed: 7)
        for _ in 0..<25 {
            signal.burst(seconds: 0.5 + signal.uniform() * 3, rms: 4000)
            signal.silence(seconds: 0.1 + signal.uniform() * 0.5, noiseRMS: 20)
        }
        let samples = signal.samples
        let whole = feed(samples, target: .seconds(2)) { _ in samples.count }
        #expect(whole.windows.count > 5)
        for chunking in [{ (r: inout Signal) in r.int(1...5000) }, { _ in 1 }, { r in r.int(1...3) == 1 ? 1 : r.int(300...340) }] {
            let chunked = feed(samples, target: .seconds(2), chunk: chunking)
            // The cuts do not depend on how the audio arrived.
            #expect(chunked.windows == whole.windows)
            #expect(chunked.last == whole.last)
            let all = chunked.windows + [chunked.last].compactMap { $0 }
            expectTiling(all)
            #expect(all.flatMap(\.samples) == samples)
        }
    }

    @Test func tilesAcrossFlushAndSkip() {
        var signal = Signal(seed: 11)
        for _ in 0..<20 {
            signal.burst(seconds: 0.3 + signal.uniform() * 2, rms: 3000)
            signal.silence(seconds: signal.uniform() * 0.6)
        }
        let samples = signal.samples
        var windower = Windower(target: .milliseconds(1500), startSample: 1_000)
        var random = Signal(seed: 3)
        var expected: Int64 = 1_000     // where the next window must start
        var produced: [Int16] = []
        var gaps = 0
        func check(_ windows: [AudioWindow]) {
            for window in windows {
                #expect(window.startSample == expected)
                expected = window.endSample
                produced += window.samples
            }
        }
        var offset = 0
        while offset < samples.count {
            let end = min(samples.count, offset + random.int(1...4000))
            check(windower.append(Array(samples[offset..<end])))
            offset = end
            if random.int(0...9) == 0 {
                // A capture gap: flush, then the timeline jumps over what was not captured.
                check([windower.flush()].compactMap { $0 })
                #expect(windower.position == expected)
                let gap = Int64(random.int(0...50_000))
                windower.skip(samples: gap)
                expected += gap
                gaps += 1
                #expect(windower.position == expected)
            }
        }
        check([windower.flush()].compactMap { $0 })
        #expect(windower.flush() == nil)
        #expect(gaps > 3)
        #expect(produced == samples)
    }

    @Test func cutsInThePauses() throws {
        var signal = Signal(seed: 5)
        signal.silence(seconds: 0.3)
        for _ in 0..<60 {
            signal.burst(seconds: 1 + signal.uniform() * 2, rms: 5000)
            signal.silence(seconds: 0.3, noiseRMS: 30)
        }
        let (windows, _) = feed(signal.samples, target: .seconds(6)) { $0.int(100...8000) }
        #expect(windows.count >= 15)
        for window in windows {
            let end = Int(window.endSample)
            #expect(signal.pauses.contains { $0.contains(end) && $0.contains(end - 1) }, "cut at \(Double(end) / 16_000) s is not in a pause")
            #expect(window.duration >= 6 && window.duration <= 12)
            #expect(window.voiced)
        }
    }

    @Test func respectsMinimumAndMaximum() {
        var signal = Signal(seed: 9)
        // Speech without a single pause, its loudness wandering: only the maximum can end a window.
        for _ in 0..<40 { signal.burst(seconds: 0.5 + signal.uniform(), rms: 2000 + signal.uniform() * 6000) }
        let (windows, last) = feed(signal.samples, target: .seconds(4)) { $0.int(1...6000) }
        #expect(windows.count >= 4)
        for window in windows {
            #expect(window.samples.count >= 2 * 16_000, "shorter than the minimum: \(window.duration) s")
            #expect(window.samples.count <= 8 * 16_000, "longer than the maximum: \(window.duration) s")
            #expect(window.samples.count % Self.frame == 0)
            #expect(window.voiced)
        }
        #expect(last.map { $0.samples.count <= 8 * 16_000 } ?? true)
    }

    @Test func silenceIsNotVoiced() {
        let (windows, last) = feed([Int16](repeating: 0, count: 16_000 * 30 + 8_000), target: .seconds(5)) { $0.int(1...9000) }
        #expect(windows.count == 6)
        #expect(windows.allSatisfy { !$0.voiced && $0.samples.count == 5 * 16_000 })
        #expect(last?.samples.count == 8_000)

        var dither = Signal(seed: 2)
        dither.noise(seconds: 20.5, rms: 1.5)
        let ditherWindows = feed(dither.samples, target: .seconds(5)) { _ in 4096 }.windows
        #expect(ditherWindows.count == 4 && ditherWindows.allSatisfy { !$0.voiced })
    }

    @Test func constantNoiseIsNotVoiced() {
        for rms in [30.0, 300.0, 3000.0] {
            var signal = Signal(seed: 4)
            signal.noise(seconds: 40.5, rms: rms)
            let (windows, _) = feed(signal.samples, target: .seconds(5)) { _ in 3200 }
            #expect(windows.count == 8)
            #expect(windows.allSatisfy { !$0.voiced }, "noise of RMS \(rms) called speech")
            // Every frame of a steady noise is at the floor: the window ends right at the target.
            #expect(windows.allSatisfy { $0.samples.count == 5 * 16_000 })
        }
    }

    @Test func burstsAreVoicedAndShortClicksAreNot() {
        var signal = Signal(seed: 8)
        signal.silence(seconds: 12, noiseRMS: 10)
        signal.burst(seconds: 1, rms: 3000)       // the second window holds 1 s of speech
        signal.silence(seconds: 9, noiseRMS: 10)
        for _ in 0..<5 {                          // the third only clicks: 4 × 40 ms
            signal.burst(seconds: 0.04, rms: 8000)
            signal.silence(seconds: 1.96, noiseRMS: 10)
        }
        let (windows, _) = feed(signal.samples, target: .seconds(10)) { _ in 1600 }
        #expect(windows.map(\.startSeconds) == [0, 10, 20])
        #expect(windows.map(\.voiced) == [false, true, false])
    }

    @Test func cutsAtTheQuietestPointWhenNoPauseComesBeforeTheMaximum() {
        var signal = Signal(seed: 12)
        signal.silence(seconds: 0.5)
        signal.noise(seconds: 2.8, rms: 3000)     // loud from 0.5 s to 3.3 s…
        signal.noise(seconds: 0.06, rms: 500)     // …a dip of 15 dB, not a pause…
        signal.noise(seconds: 6.64, rms: 3000)    // …and on to 10 s
        let (windows, _) = feed(signal.samples, target: .seconds(2)) { $0.int(1...2000) }
        let first = try! #require(windows.first)
        #expect((52_800..<53_760).contains(first.endSample), "cut at \(first.endSeconds) s, not in the dip at 3.3 s")
        #expect(windows.allSatisfy { $0.duration >= 1 && $0.duration <= 4 })
    }

    @Test func noiseFloorAdaptsToALoudBackground() {
        var signal = Signal(seed: 6)
        signal.silence(seconds: 3, noiseRMS: 20)
        signal.noise(seconds: 40, rms: 1500)      // a loud fan, constant
        let adapted = signal.samples.count
        for _ in 0..<5 {                          // someone speaks over it, 15 dB louder
            signal.burst(seconds: 1.5, rms: 8500, backgroundRMS: 1500)
            signal.noise(seconds: 0.5, rms: 1500)
        }
        signal.noise(seconds: 20, rms: 1500)
        let (windows, _) = feed(signal.samples, target: .seconds(5)) { $0.int(500...5000) }
        let during = windows.filter { $0.startSample >= 16_000 * 12 && $0.endSample <= Int64(adapted) }
        #expect(during.count >= 4)
        #expect(during.allSatisfy { !$0.voiced }, "the constant background was called speech")
        #expect(during.allSatisfy { $0.samples.count == 5 * 16_000 }, "the background is not the floor")
        let speech = windows.filter { $0.endSample > Int64(adapted) && $0.startSample < Int64(adapted + 16_000 * 10) }
        #expect(speech.contains { $0.voiced }, "speech over the background was not heard")
        let after = windows.filter { $0.startSample >= Int64(adapted + 16_000 * 11) }
        #expect(!after.isEmpty && after.allSatisfy { !$0.voiced })
    }

    @Test func windowTimes() {
        let window = AudioWindow(startSample: 32_000, samples: [Int16](repeating: 0, count: 8_000), voiced: false)
        #expect(window.endSample == 40_000)
        #expect(window.startSeconds == 2 && window.endSeconds == 2.5 && window.duration == 0.5)
    }
}

@Suite("windower: the speech sent to the ASR")
struct SpeechOnlyTests {
    /// 1 s of a 440 Hz tone at a speech-like level.
    static func tone(seconds: Double) -> [Int16] {
        (0..<Int(seconds * 16_000)).map { Int16(sin(Double($0) * 2 * .pi * 440 / 16_000) * 6000) }
    }

    @Test("long pauses are left out, 80 ms of context is kept around speech, and a window of speech is unchanged")
    func pausesLeftOut() {
        var windower = Windower(target: .seconds(15))
        // Let the floor learn digital silence, then speech, a 5 s pause, speech.
        _ = windower.append([Int16](repeating: 0, count: 16_000 * 8))
        let samples = Self.tone(seconds: 2) + [Int16](repeating: 0, count: 16_000 * 5) + Self.tone(seconds: 2)
        let speech = windower.speechOnly(samples)
        let kept = Double(speech.count) / 16_000
        #expect(abs(kept - (4 + 0.16)) < 0.05, "2 s + 2 s of speech and 80 ms on each inner side; kept \(kept) s")
        let continuous = Self.tone(seconds: 3)
        #expect(windower.speechOnly(continuous) == continuous)
    }
}
