/// The WAV files tttd writes: a 44-byte RIFF/WAVE header (PCM, mono, 16-bit little endian) and the
/// samples. What the ASR receives, and what the backlog spills to disk.
public enum WAV {
    static let headerLength = 44

    public static func encode(_ samples: [Int16], sampleRate: Int = PCM.sampleRate) -> [UInt8] {
        let dataLength = samples.count * 2
        var bytes: [UInt8] = []
        bytes.reserveCapacity(headerLength + dataLength)
        func append32(_ value: Int) { withUnsafeBytes(of: UInt32(value).littleEndian) { bytes.append(contentsOf: $0) } }
        func append16(_ value: Int) { withUnsafeBytes(of: UInt16(value).littleEndian) { bytes.append(contentsOf: $0) } }
        bytes.append(contentsOf: Array("RIFF".utf8))
        append32(36 + dataLength)
        bytes.append(contentsOf: Array("WAVEfmt ".utf8))
        append32(16)                 // fmt chunk length
        append16(1)                  // PCM
        append16(1)                  // mono
        append32(sampleRate)
        append32(sampleRate * 2)     // byte rate
        append16(2)                  // block align
        append16(16)                 // bits per sample
        bytes.append(contentsOf: Array("data".utf8))
        append32(dataLength)
        for sample in samples {
            let value = UInt16(bitPattern: sample)
            bytes.append(UInt8(truncatingIfNeeded: value))
            bytes.append(UInt8(truncatingIfNeeded: value >> 8))
        }
        return bytes
    }

    /// The samples of a file `encode` wrote at `sampleRate`; nil for anything else (another
    /// layout, format or rate, or a truncated file).
    public static func decode(_ bytes: [UInt8], sampleRate: Int = PCM.sampleRate) -> [Int16]? {
        guard bytes.count >= headerLength else { return nil }
        func u32(_ at: Int) -> Int {
            Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
        }
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        let dataLength = bytes.count - headerLength
        guard bytes[0..<4].elementsEqual("RIFF".utf8), u32(4) == 36 + dataLength,
              bytes[8..<16].elementsEqual("WAVEfmt ".utf8), u32(16) == 16,
              u16(20) == 1, u16(22) == 1, u32(24) == sampleRate, u32(28) == sampleRate * 2,
              u16(32) == 2, u16(34) == 16,
              bytes[36..<40].elementsEqual("data".utf8), u32(40) == dataLength, dataLength % 2 == 0
        else { return nil }
        var samples = [Int16]()
        samples.reserveCapacity(dataLength / 2)
        var index = headerLength
        while index < bytes.count {
            samples.append(Int16(bitPattern: UInt16(bytes[index]) | UInt16(bytes[index + 1]) << 8))
            index += 2
        }
        return samples
    }
}
