import Testing
@testable import TTTTranscription

@Suite struct WAVTests {
    @Test func headerBytes() {
        let bytes = WAV.encode([1, -2])
        #expect(bytes.count == 48)
        #expect(bytes == [
            0x52, 0x49, 0x46, 0x46, 40, 0, 0, 0, 0x57, 0x41, 0x56, 0x45,   // "RIFF", 36 + 4, "WAVE"
            0x66, 0x6D, 0x74, 0x20, 16, 0, 0, 0, 1, 0, 1, 0,             // "fmt ", 16, PCM, mono
            0x80, 0x3E, 0, 0, 0x00, 0x7D, 0, 0, 2, 0, 16, 0,             // 16000 Hz, 32000 B/s, 2, 16 bits
            0x64, 0x61, 0x74, 0x61, 4, 0, 0, 0,                          // "data", 4
            0x01, 0x00, 0xFE, 0xFF,                                      // 1, -2 little endian
        ])
    }

    @Test func roundTrip() {
        var samples: [Int16] = [0, 1, -1, .max, .min, 256, -256]
        var state: UInt32 = 12345
        for _ in 0..<16_000 {
            state = state &* 1_103_515_245 &+ 12345
            samples.append(Int16(truncatingIfNeeded: state >> 8))
        }
        #expect(WAV.decode(WAV.encode(samples)) == samples)
        #expect(WAV.decode(WAV.encode([])) == [])
        #expect(WAV.decode(WAV.encode(samples, sampleRate: 8_000), sampleRate: 8_000) == samples)
    }

    @Test func rejectsWhatItDoesNotWrite() {
        let good = WAV.encode([1, 2, 3])
        #expect(WAV.decode(Array(good.dropLast())) == nil)           // truncated
        #expect(WAV.decode(Array(good.prefix(20))) == nil)
        #expect(WAV.decode(good + [0, 0]) == nil)                    // trailing bytes
        #expect(WAV.decode(WAV.encode([1], sampleRate: 44_100)) == nil)
        var stereo = good
        stereo[22] = 2
        #expect(WAV.decode(stereo) == nil)
        var float = good
        float[20] = 3
        #expect(WAV.decode(float) == nil)
        var riff = good
        riff[0] = 0x58
        #expect(WAV.decode(riff) == nil)
    }
}
