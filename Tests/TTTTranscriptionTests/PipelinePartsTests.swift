import Foundation
import NIOCore
import Testing
@testable import TTTTranscription

@Suite("pipeline parts: backlog, timeline, PCM decoding, audio ring")
struct PipelinePartsTests {
    static func voiced(_ seq: Int, samples: Int = 1600) -> PendingWindow {
        PendingWindow(seq: seq, start: Double(seq), end: Double(seq + 1),
                      content: .voiced(.memory([Int16](repeating: Int16(seq), count: samples))), cutAt: .now)
    }

    @Test("the backlog gives windows back in order, spills past its memory share, and reads spilled audio back")
    func backlogOrderAndSpill() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ttt-backlog-\(UUID())")
        defer { try? FileManager.default.removeItem(at: directory) }
        let backlog = Backlog(memoryWindows: 2, maxWindows: 100, spillDirectory: directory)
        for seq in 0..<6 { await backlog.push(Self.voiced(seq)) }
        #expect(await backlog.count == 6)
        let spilled = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        #expect(spilled.count == 4, "windows beyond the memory share go to files: \(spilled)")
        await backlog.close()
        var seqs = [Int]()
        while let window = await backlog.next() {
            seqs.append(window.seq)
            guard case .voiced(let audio) = window.content else { Issue.record("window \(window.seq) lost its audio"); continue }
            switch audio {
            case .memory(let samples): #expect(samples.first == Int16(window.seq))
            case .file(let url):
                let samples = WAV.decode([UInt8](try Data(contentsOf: url)))
                #expect(samples?.count == 1600 && samples?.first == Int16(window.seq))
            }
        }
        #expect(seqs == Array(0..<6))
    }

    @Test("a full backlog records a window as skipped instead of holding it; silent windows hold no audio")
    func backlogFull() async {
        let backlog = Backlog(memoryWindows: 10, maxWindows: 3, spillDirectory: nil)
        for seq in 0..<4 { await backlog.push(Self.voiced(seq)) }
        await backlog.push(PendingWindow(seq: 4, start: 4, end: 5, content: .silent, cutAt: .now))
        await backlog.close()
        var kinds = [String]()
        while let window = await backlog.next() {
            switch window.content {
            case .voiced: kinds.append("voiced")
            case .silent: kinds.append("silent")
            case .dropped(let reason):
                kinds.append("dropped")
                #expect(reason.contains("backlog full"))
            case .gap: kinds.append("gap")
            }
        }
        #expect(kinds == ["voiced", "voiced", "voiced", "dropped", "silent"])
    }

    @Test("a waiting consumer is woken by the next push and by close")
    func backlogWakesConsumer() async {
        let backlog = Backlog(memoryWindows: 2, maxWindows: 10, spillDirectory: nil)
        async let first = backlog.next()
        await Task.yield()
        await backlog.push(Self.voiced(7))
        #expect(await first?.seq == 7)
        async let end = backlog.next()
        await Task.yield()
        await backlog.close()
        #expect(await end == nil)
    }

    @Test("the timeline tiles captured audio and gaps, numbering windows from the resumed sequence")
    func timelineTiles() {
        let settings = Pipeline.Settings(window: .seconds(2), model: "m", language: "en", spillDirectory: nil)
        var timeline = Timeline(settings: settings, start: 10, seq: 5)
        var windows = [PendingWindow]()
        let tone = (0..<16_000 * 5).map { Int16(sin(Double($0) / 8) * 8000) }
        tone.withUnsafeBufferPointer { windows += timeline.append($0) }
        if let rest = timeline.flush() { windows.append(rest) }
        windows.append(timeline.gap(seconds: 1.5, reason: "capture gap: test"))
        Array(tone.prefix(16_000)).withUnsafeBufferPointer { windows += timeline.append($0) }
        if let rest = timeline.flush() { windows.append(rest) }

        #expect(windows.first?.start == 10)
        #expect(windows.map(\.seq) == Array(5..<(5 + windows.count)))
        for (previous, next) in zip(windows, windows.dropFirst()) {
            #expect(abs(next.start - previous.end) < 1e-9, "window \(next.seq) starts at \(next.start), previous ended at \(previous.end)")
        }
        let end: Double = windows.last?.end ?? 0
        #expect(abs(end - 17.5) < 1e-9, "10 s resumed + 5 s + a 1.5 s gap + 1 s")
        #expect(timeline.capturedSeconds == 6)
    }

    @Test("PCM bytes split at odd offsets decode to the same samples")
    func decoderCarriesOddBytes() {
        let samples: [Int16] = [0, 1, -1, 32767, -32768, 1234, -4321]
        var bytes = [UInt8]()
        for sample in samples { bytes += [UInt8(truncatingIfNeeded: sample), UInt8(truncatingIfNeeded: sample >> 8)] }
        var decoder = SampleDecoder()
        var decoded = [Int16]()
        for chunk in [bytes[0..<3], bytes[3..<4], bytes[4..<9], bytes[9..<14]] {
            decoder.decode(ByteBuffer(bytes: chunk)) { decoded += $0 }
        }
        #expect(decoded == samples)
    }

    @Test("the audio ring keeps the most recent audio and clips by timeline position")
    func ringClips() {
        var ring = PCMRing(seconds: 1)
        var position: Int64 = 0
        for block in 0..<5 {
            let samples = (0..<6_000).map { Int16(truncatingIfNeeded: block * 6_000 + $0) }
            position += Int64(samples.count)
            samples.withUnsafeBufferPointer { ring.append($0, endingAt: position) }
        }
        #expect(ring.clip(from: 0, to: 100) == nil, "audio older than the ring's span is gone")
        let clip = ring.clip(from: 29_000, to: 29_010)
        #expect(clip == (29_000..<29_010).map { Int16(truncatingIfNeeded: $0) })
        #expect(ring.clip(from: 29_990, to: 30_500)?.count == 10, "a span reaching past the newest sample is cut there")
        #expect(ring.clip(from: 30_000, to: 30_500) == nil)
        #expect(ring.clip(from: 13_000, to: 14_010)?.first == Int16(truncatingIfNeeded: 14_000), "and before the oldest one")
    }
}
