/// The one audio format of the pipeline: what ffmpeg writes and what the windows hold.
public enum PCM {
    /// 16 kHz mono signed 16-bit little-endian samples throughout.
    public static let sampleRate = 16_000
}

/// A stretch of the pipeline's timeline. Timeline positions are sample counts at 16 kHz from the
/// start of the pipeline's capture.
public struct AudioWindow: Sendable, Equatable {
    public var startSample: Int64
    public var samples: [Int16]
    /// The voice-activity detector found speech in it (else it is recorded as silent and never sent).
    public var voiced: Bool

    public init(startSample: Int64, samples: [Int16], voiced: Bool) {
        self.startSample = startSample
        self.samples = samples
        self.voiced = voiced
    }

    public var endSample: Int64 { startSample + Int64(samples.count) }
    public var startSeconds: Double { Double(startSample) / Double(PCM.sampleRate) }
    public var endSeconds: Double { Double(endSample) / Double(PCM.sampleRate) }
    public var duration: Double { Double(samples.count) / Double(PCM.sampleRate) }
}
