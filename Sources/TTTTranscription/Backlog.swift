import Foundation

/// A window waiting to be recorded, in capture order.
struct PendingWindow: Sendable {
    enum Content: Sendable {
        /// Speech to send to the ASR, held in memory or spilled to a file.
        case voiced(Audio)
        /// No voice: recorded as silent, never sent.
        case silent
        /// Not captured (ffmpeg restarting, tttd restarted): recorded as skipped with the reason.
        case gap(reason: String)
        /// Captured but never sent (the backlog was full): recorded as skipped with the reason.
        case dropped(reason: String)
    }

    enum Audio: Sendable {
        case memory([Int16])
        case file(URL)
    }

    var seq: Int
    var start: Double
    var end: Double
    var content: Content
    /// When the window's end was captured: the transcript's latency counts from here.
    var cutAt: ContinuousClock.Instant
}

/// The windows of one pipeline waiting for the ASR: one consumer, in order. Voiced windows beyond
/// `memoryWindows` are written to files in `spillDirectory`; past `maxWindows` waiting, a voiced
/// window is recorded as skipped ("backlog full") instead of being held — never silently lost.
actor Backlog {
    private var items: [PendingWindow] = []
    private var head = 0
    private var inMemory = 0
    private var closed = false
    private var waiter: CheckedContinuation<PendingWindow?, Never>?
    private let memoryWindows: Int
    private let maxWindows: Int
    private let spillDirectory: URL?

    init(memoryWindows: Int, maxWindows: Int, spillDirectory: URL?) {
        self.memoryWindows = memoryWindows
        self.maxWindows = maxWindows
        self.spillDirectory = spillDirectory
    }

    var count: Int { items.count - head }

    func push(_ window: PendingWindow) {
        var window = window
        if case .voiced(.memory(let samples)) = window.content {
            if count >= maxWindows {
                window.content = .dropped(reason: "ASR backlog full (\(maxWindows) windows waiting)")
            } else if inMemory >= memoryWindows, let file = spill(samples, seq: window.seq) {
                window.content = .voiced(.file(file))
            } else {
                inMemory += 1
            }
        }
        if let waiter {
            self.waiter = nil
            waiter.resume(returning: taken(window))
            return
        }
        items.append(window)
    }

    /// The next window in order; nil once closed and empty.
    func next() async -> PendingWindow? {
        if head < items.count {
            let window = items[head]
            head += 1
            if head > 64 && head * 2 > items.count {
                items.removeFirst(head)
                head = 0
            }
            return taken(window)
        }
        if closed { return nil }
        return await withCheckedContinuation { waiter = $0 }
    }

    func close() {
        closed = true
        if let waiter, head >= items.count {
            self.waiter = nil
            waiter.resume(returning: nil)
        }
    }

    private func taken(_ window: PendingWindow) -> PendingWindow {
        if case .voiced(.memory) = window.content { inMemory -= 1 }
        return window
    }

    private func spill(_ samples: [Int16], seq: Int) -> URL? {
        guard let spillDirectory else { return nil }
        let file = spillDirectory.appendingPathComponent("\(seq).wav")
        do {
            try FileManager.default.createDirectory(at: spillDirectory, withIntermediateDirectories: true)
            try Data(WAV.encode(samples)).write(to: file)
            return file
        } catch {
            return nil
        }
    }
}

/// The last minutes of a pipeline's audio, for the evidence clips of an alert.
struct PCMRing: Sendable {
    private var samples: [Int16]
    private var next = 0
    private var filled = false
    /// Timeline position (in samples) just after the newest sample kept.
    private(set) var end: Int64 = 0

    init(seconds: Int) {
        samples = []
        samples.reserveCapacity(0)
        capacity = seconds * PCM.sampleRate
    }

    let capacity: Int

    mutating func append(_ new: UnsafeBufferPointer<Int16>, endingAt position: Int64) {
        end = position
        // Grows to its capacity as audio comes, then overwrites the oldest.
        if !filled {
            let room = capacity - samples.count
            samples.append(contentsOf: new.prefix(room))
            if samples.count < capacity { return }
            filled = true
            next = 0
            let rest = UnsafeBufferPointer(rebasing: new.dropFirst(room))
            guard !rest.isEmpty else { return }
            append(rest, endingAt: position)
            return
        }
        for sample in new.suffix(capacity) {
            samples[next] = sample
            next = next == capacity - 1 ? 0 : next + 1
        }
    }

    /// The samples held between two timeline positions (the part of that span still in memory);
    /// nil when none of it is.
    func clip(from start: Int64, to stop: Int64) -> [Int16]? {
        let held = Int64(filled ? capacity : samples.count)
        let oldest = end - held
        let (from, to) = (max(start, oldest), min(stop, end))
        guard from < to else { return nil }
        let first = filled ? next : 0
        return (from..<to).map { position in
            samples[(first + Int(position - oldest)) % samples.count]
        }
    }
}
