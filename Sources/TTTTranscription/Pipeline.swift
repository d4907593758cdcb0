import Foundation
import Logging
import NIOCore
import Synchronization
import TTTDomain
import TTTStore

/// One live's transcription: a long-running ffmpeg (restarted with a fresh URL when it ends or
/// stalls while the live goes on), voice-activity windows that tile the captured timeline, and one
/// ASR request at a time, in order, with a bounded backlog. Every window ends up recorded: with its
/// text, as silent, or as skipped with the reason.
public final class Pipeline: Sendable {
    public struct Settings: Sendable {
        public var window: Duration
        public var model: String
        public var language: String?
        public var stallTimeout: Duration
        /// Voiced windows held in memory while the ASR is slow; the next ones go to files.
        public var memoryWindows: Int
        /// Windows waiting at most (two hours of 15 s windows); past it a window is recorded as skipped.
        public var maxBacklog: Int
        public var spillDirectory: URL?
        /// How much recent audio stays in memory for evidence clips.
        public var keepAudio: Duration
        /// Windows with words are queued for the analyzer.
        public var analyse: Bool
        /// With no audio for this long (since the start or the last audio), the pipeline ends as failed.
        public var giveUpAfter: Duration

        public init(window: Duration, model: String, language: String?, stallTimeout: Duration = .seconds(10),
                    memoryWindows: Int = 8, maxBacklog: Int = 480, spillDirectory: URL?, keepAudio: Duration = .seconds(120),
                    analyse: Bool = false, giveUpAfter: Duration = .seconds(300)) {
            self.analyse = analyse
            self.giveUpAfter = giveUpAfter
            self.window = window
            self.model = model
            self.language = language
            self.stallTimeout = stallTimeout
            self.memoryWindows = memoryWindows
            self.maxBacklog = maxBacklog
            self.spillDirectory = spillDirectory
            self.keepAudio = keepAudio
        }
    }

    /// What `tttctl pipelines` shows.
    public struct Snapshot: Sendable {
        public var id: Int64
        public var liveID: Int64
        public var username: String
        public var state: String
        public var startedAt: Date
        public var audioSeconds: Double
        public var windows: Int
        public var backlog: Int
        public var gapSeconds: Double
        public var asrP50Milliseconds: Int?
    }

    /// Why a pipeline stops: with `drain`, the windows already cut are still transcribed.
    public struct Stop: Sendable {
        public var reason: String
        public var drain: Bool
        /// The pipeline gave up (no audio for too long): it ends `failed`, not `stopped`.
        public var failed: Bool
        public init(reason: String, drain: Bool, failed: Bool = false) {
            self.reason = reason
            self.drain = drain
            self.failed = failed
        }
    }

    public let id: Int64
    public let claim: Store.PipelineClaim
    let node: String
    let settings: Settings
    let recorder: any PipelineRecorder
    let transcriber: any Transcriber
    let capture: FFmpegCapture
    let locator: any StreamLocator
    let logger: Logger
    let metrics: TranscriptionMetrics
    private let backlog: Backlog
    private let status: Mutex<Status>
    private let audio: Mutex<PCMRing>

    private struct Status {
        var state = "starting"
        var startedAt = Date()
        var audioSeconds = 0.0
        var gapSeconds = 0.0
        var windows = 0
        var asrTimes: [Int] = []
        var reason: String?
        var stop: Stop?
        var captureTask: Task<Void, Never>?
        /// The capture ended for good: what remains is transcribing the backlog.
        var captureEnded = false
        /// The stream URL detection last stored for the live (it refreshes it on each lookup).
        var knownURL: String?
    }

    init(id: Int64, claim: Store.PipelineClaim, node: String, settings: Settings, recorder: any PipelineRecorder,
         transcriber: any Transcriber, capture: FFmpegCapture, locator: any StreamLocator, metrics: TranscriptionMetrics,
         logger: Logger) {
        self.id = id
        self.metrics = metrics
        self.claim = claim
        self.node = node
        self.settings = settings
        self.recorder = recorder
        self.transcriber = transcriber
        self.capture = capture
        self.locator = locator
        var logger = logger
        logger[metadataKey: "live_id"] = "\(claim.liveID)"
        logger[metadataKey: "pipeline_id"] = "\(id)"
        self.logger = logger
        backlog = Backlog(memoryWindows: settings.memoryWindows, maxWindows: settings.maxBacklog,
                          spillDirectory: settings.spillDirectory?.appendingPathComponent("pipeline-\(id)"))
        status = Mutex(Status())
        audio = Mutex(PCMRing(seconds: Int(settings.keepAudio.asSeconds)))
    }

    public func snapshot() async -> Snapshot {
        let waiting = await backlog.count
        return status.withLock { status in
            let sorted = status.asrTimes.sorted()
            return Snapshot(id: id, liveID: claim.liveID, username: claim.username, state: status.state,
                            startedAt: status.startedAt, audioSeconds: status.audioSeconds, windows: status.windows,
                            backlog: waiting, gapSeconds: status.gapSeconds,
                            asrP50Milliseconds: sorted.isEmpty ? nil : sorted[sorted.count / 2])
        }
    }

    /// The recent audio between two timeline positions (seconds), while still held in memory.
    public func clip(from start: Double, to end: Double) -> [Int16]? {
        audio.withLock { $0.clip(from: Int64(start * Double(PCM.sampleRate)), to: Int64(end * Double(PCM.sampleRate))) }
    }

    /// Ends the capture; the pipeline then records what it holds (transcribed when draining) and stops.
    /// The first reason given is the one recorded.
    public func stop(_ stop: Stop) {
        let task = status.withLock { status -> Task<Void, Never>? in
            if let previous = status.stop {
                // A hurried stop overrides a draining one (tttd is stopping while a live drains).
                if previous.drain && !stop.drain { status.stop?.drain = false }
                return status.captureTask
            }
            status.stop = stop
            return status.captureTask
        }
        task?.cancel()
    }

    private var stopRequest: Stop? { status.withLock { $0.stop } }

    /// Whether this pipeline counts against `max_pipelines`, which counts captures: its ffmpeg runs
    /// (or will run again) and it has not been told to stop. One that only drains its backlog (its
    /// live ended) does not, nor one whose ffmpeg is being ended: a live detected in the pass that
    /// saw the previous one end must not be refused for the second or two that takes.
    public var holdsCaptureSlot: Bool { status.withLock { !$0.captureEnded && $0.stop == nil } }

    /// The live's stream URL as the database has it now; used when ffmpeg is restarted.
    public func streamURLChanged(_ url: String?) {
        guard let url else { return }
        status.withLock { $0.knownURL = url }
    }

    /// A fresh URL from TikTok when the locator allows a request now, else the one detection stored.
    private func freshURL(current: String?) async -> String? {
        if let url = await locator.streamURL(roomID: claim.roomID) { return url }
        return status.withLock { $0.knownURL } ?? current
    }

    /// Runs until stopped; records the final state.
    public func run() async {
        metrics.pipeline(from: nil, to: "starting")
        let captureTask = Task { await captureLoop() }
        let stopAlready = status.withLock { status -> Bool in
            status.captureTask = captureTask
            return status.stop != nil
        }
        if stopAlready { captureTask.cancel() }
        async let transcribing: Void = transcribeLoop()
        await captureTask.value
        status.withLock { $0.captureEnded = true }
        await backlog.close()
        await transcribing
        let stop = stopRequest ?? Stop(reason: "capture ended", drain: true)
        await setState(stop.failed ? "failed" : "stopped", reason: stop.reason)
        if let directory = settings.spillDirectory?.appendingPathComponent("pipeline-\(id)") {
            try? FileManager.default.removeItem(at: directory)
        }
        if stop.failed {
            metrics.failures.increment()
            logger.error("pipeline failed", metadata: ["reason": "\(stop.reason)"])
        } else {
            logger.notice("pipeline stopped", metadata: ["reason": "\(stop.reason)"])
        }
    }

    // MARK: Capture

    private func captureLoop() async {
        var timeline = Timeline(settings: settings, start: claim.timelineEnd, seq: claim.nextSeq)
        // A resumed live: the time since its previous pipeline last recorded a window is lost, up
        // to this pipeline's first audio (failed starts and their backoff included).
        var resumedAfter = claim.previousActivity
        var url = claim.streamURL
        var backoff = Duration.seconds(1)
        var lastAudioAt: ContinuousClock.Instant?
        let began = ContinuousClock.now
        var decoder = SampleDecoder()
        while !Task.isCancelled {
            if url == nil { url = await freshURL(current: nil) }
            guard let streamURL = url else {
                let reason = "no stream URL for room \(claim.roomID) (age-restricted? the tiktok_session secret helps)"
                await setState("reconnecting", reason: reason)
                if giveUp(since: lastAudioAt ?? began, reason) { break }
                if await pause(backoff) { break }
                backoff = min(backoff * 2, .seconds(30))
                continue
            }
            var firstAudio = true
            let attemptBegan = ContinuousClock.now
            let outcome = await capture.run(url: streamURL) { buffer in
                if firstAudio {
                    firstAudio = false
                    if let previous = resumedAfter {
                        resumedAfter = nil
                        let missed = Date().timeIntervalSince(previous)
                        if missed > 0 {
                            await push(timeline.gap(seconds: missed, reason: "capture gap: no pipeline ran for this live (tttd restarted, or the live was handed over)"))
                        }
                    } else if let lastAudioAt {
                        let missed = (ContinuousClock.now - lastAudioAt).asSeconds
                        await push(timeline.gap(seconds: missed, reason: "capture gap: the stream was reconnecting"))
                    }
                    await setState("capturing", reason: nil)
                }
                await consume(buffer, decoder: &decoder, timeline: &timeline)
                lastAudioAt = .now
            }
            decoder = SampleDecoder()
            if let rest = timeline.flush() { await push(rest) }
            if Task.isCancelled { break }
            logger.info("capture interrupted", metadata: ["reason": "\(outcome.reason)", "bytes": "\(outcome.bytes)"])
            await setState("reconnecting", reason: outcome.reason)
            if giveUp(since: lastAudioAt ?? began, outcome.reason) { break }
            // A capture that ran a while deserves a quick retry; repeated failures back off.
            backoff = ContinuousClock.now - attemptBegan > .seconds(60) ? .seconds(1) : backoff
            if await pause(backoff) { break }
            backoff = min(backoff * 2, .seconds(30))
            url = await freshURL(current: url)
        }
    }

    /// After `giveUpAfter` without audio the pipeline stops trying and ends as failed, so that the
    /// live's channels hear of it; the supervisor tries the live again a minute later.
    private func giveUp(since lastProgress: ContinuousClock.Instant, _ reason: String) -> Bool {
        let silent = ContinuousClock.now - lastProgress
        guard silent >= settings.giveUpAfter else { return false }
        let stop = Stop(reason: "no audio for \(Int(silent.asSeconds)) s, giving up (last: \(reason))", drain: true, failed: true)
        status.withLock { $0.stop = $0.stop ?? stop }
        return true
    }

    private func consume(_ buffer: ByteBuffer, decoder: inout SampleDecoder, timeline: inout Timeline) async {
        let windows = decoder.decode(buffer) { samples in
            audio.withLock { $0.append(samples, endingAt: timeline.windower.position + Int64(samples.count)) }
            return timeline.append(samples)
        }
        status.withLock { $0.audioSeconds = timeline.capturedSeconds }
        for window in windows { await push(window) }
    }

    private func push(_ window: PendingWindow) async {
        metrics.backlog.increment()
        await backlog.push(window)
    }

    /// Sleeps unless stopped first; true when stopped.
    private func pause(_ duration: Duration) async -> Bool {
        do { try await Task.sleep(for: duration) } catch { return true }
        return Task.isCancelled
    }

    // MARK: Transcription

    private func transcribeLoop() async {
        var previousText: String?
        while let window = await backlog.next() {
            metrics.backlog.decrement()
            var row = Store.TranscriptRow(seq: window.seq, startSeconds: window.start, endSeconds: window.end)
            var gap = 0.0
            switch window.content {
            case .silent:
                row.silent = true
            case .gap(let reason):
                row.skipped = true
                row.reason = reason
                gap = window.end - window.start
            case .dropped(let reason):
                row.skipped = true
                row.reason = reason
            case .voiced(let audio):
                row = await transcribe(window, audio: audio, previousText: previousText)
                if !row.skipped && !row.filtered && !row.text.isEmpty { previousText = row.text }
            }
            row.latencyMilliseconds = row.silent || row.skipped ? nil
                : Int(((ContinuousClock.now - window.cutAt).asSeconds * 1000).rounded())
            let progress = status.withLock { status -> Store.PipelineProgress in
                status.windows += 1
                status.gapSeconds += gap
                return .init(audioSeconds: status.audioSeconds, gapSeconds: status.gapSeconds, windows: status.windows)
            }
            metrics.recorded(row)
            let recorded = row
            await persist("transcript \(row.seq)") { [recorder, claim, id] () async throws(StoreError) in
                try await recorder.recordTranscript(recorded, liveID: claim.liveID, pipelineID: id, progress: progress,
                                                    analyse: settings.analyse)
            }
        }
    }

    private func transcribe(_ window: PendingWindow, audio: PendingWindow.Audio, previousText: String?) async -> Store.TranscriptRow {
        var row = Store.TranscriptRow(seq: window.seq, startSeconds: window.start, endSeconds: window.end, model: settings.model)
        let wav: [UInt8]
        switch audio {
        case .memory(let samples):
            wav = WAV.encode(samples)
        case .file(let file):
            guard let data = try? Data(contentsOf: file) else {
                row.skipped = true
                row.reason = "the spilled audio could not be read back (\(file.lastPathComponent))"
                return row
            }
            try? FileManager.default.removeItem(at: file)
            wav = [UInt8](data)
        }
        let request = TranscriptionRequest(wav: wav, model: settings.model, language: settings.language)
        var delay = Duration.seconds(1)
        while true {
            if let stop = stopRequest, !stop.drain {
                row.skipped = true
                row.reason = "not transcribed before the pipeline stopped (\(stop.reason))"
                return row
            }
            let began = ContinuousClock.now
            do {
                guard let result = try await transcribeUnlessHurried(request) else { continue }
                let asr = Int(((ContinuousClock.now - began).asSeconds * 1000).rounded())
                status.withLock { status in
                    status.asrTimes.append(asr)
                    if status.asrTimes.count > 200 { status.asrTimes.removeFirst(100) }
                }
                let verdict = HallucinationFilter.judge(result, configuredLanguage: settings.language, previousText: previousText)
                // What was dropped (non-speech, looping segments) stays in the segments; a window
                // filtered as a whole keeps its text, flagged.
                row.text = verdict.filtered ? verdict.text : verdict.keptText
                row.language = verdict.language ?? settings.language
                row.filtered = verdict.filtered
                row.unreliable = verdict.unreliable
                row.reason = verdict.reasons.isEmpty ? nil : verdict.reasons.joined(separator: "; ")
                row.asrMilliseconds = asr
                row.segmentsJSON = (try? JSONEncoder().encode(result.segments)).map { String(decoding: $0, as: UTF8.self) }
                return row
            } catch {
                switch error {
                case .rejected(let reason):
                    logger.warning("the ASR refused a window", metadata: ["seq": "\(window.seq)", "reason": "\(reason)"])
                    row.skipped = true
                    row.reason = "ASR refused it: \(reason)"
                    return row
                case .retriable(let reason, let retryAfter):
                    let wait = max(retryAfter ?? delay, delay)
                    logger.warning("ASR request failed; retrying", metadata: [
                        "seq": "\(window.seq)", "reason": "\(reason)", "retry_in": "\(wait)"])
                    await waitUnlessHurried(wait)
                    delay = min(delay * 2, .seconds(60))
                }
            }
        }
    }

    /// The ASR's answer, or nil when a stop that does not drain (tttd stopping) comes first: the
    /// request is then cancelled rather than awaited for up to the ASR's timeout, which would keep
    /// tttd from stopping within systemd's TimeoutStopSec.
    private func transcribeUnlessHurried(_ request: TranscriptionRequest) async throws(TranscriptionError) -> TranscriptionResult? {
        let first = await withTaskGroup(of: Result<TranscriptionResult, TranscriptionError>?.self) { group in
            group.addTask { [transcriber] in
                do throws(TranscriptionError) { return .success(try await transcriber.transcribe(request)) } catch { return .failure(error) }
            }
            group.addTask {
                while !Task.isCancelled {
                    if let stop = self.stopRequest, !stop.drain { return nil }
                    try? await Task.sleep(for: .milliseconds(200))
                }
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        guard let first else { return nil }
        return try first.get()
    }

    /// Waits, cut short when a non-draining stop arrives (tttd stopping).
    private func waitUnlessHurried(_ duration: Duration) async {
        let until = ContinuousClock.now + duration
        while ContinuousClock.now < until {
            if let stop = stopRequest, !stop.drain { return }
            try? await Task.sleep(for: min(.milliseconds(200), until - .now))
        }
    }

    // MARK: Recording

    private func setState(_ state: String, reason: String?) async {
        // The state before, when this is news: a new state, or a new reason for reconnecting (the
        // same one again, at every retry, is noise).
        let previous = status.withLock { status -> String? in
            guard status.state != state || (state == "reconnecting" && status.reason != reason) else { return nil }
            let previous = status.state
            status.state = state
            status.reason = reason
            return previous
        }
        guard let previous else { return }
        if previous != state { metrics.pipeline(from: previous, to: state) }
        let retryAfter = min(Duration.seconds(60), settings.giveUpAfter)
        await persist("state \(state)") { [recorder, claim, id, node] () async throws(StoreError) in
            try await recorder.setPipelineState(id, liveID: claim.liveID, node: node, state: state, reason: reason,
                                                retryAfter: retryAfter)
        }
    }

    /// Database writes are retried while the database is away: an accepted window is never lost.
    /// Only a stop that does not drain (tttd stopping) gives up, after a few attempts.
    private func persist(_ what: String, _ write: @Sendable () async throws(StoreError) -> Void) async {
        var delay = Duration.milliseconds(500)
        var attempts = 0
        while true {
            attempts += 1
            do {
                try await write()
                return
            } catch {
                if case .failed = error, attempts >= 3 {
                    logger.error("could not record \(what): \(error)")
                    return
                }
                if let stop = stopRequest, !stop.drain, attempts >= 3 {
                    logger.error("could not record \(what) before stopping: \(error)")
                    return
                }
                logger.warning("could not record \(what); retrying", metadata: ["reason": "\(error)", "retry_in": "\(delay)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(10))
            }
        }
    }
}

/// The pipeline's timeline: windows cut from captured audio, gaps where nothing was captured, and
/// the sequence numbers, so that consecutive windows tile it exactly.
struct Timeline {
    var windower: Windower
    var seq: Int
    private var capturedSamples: Int64 = 0

    init(settings: Pipeline.Settings, start: Double, seq: Int) {
        windower = Windower(target: settings.window, startSample: Int64((start * Double(PCM.sampleRate)).rounded()))
        self.seq = seq
    }

    var capturedSeconds: Double { Double(capturedSamples) / Double(PCM.sampleRate) }

    mutating func append(_ samples: UnsafeBufferPointer<Int16>) -> [PendingWindow] {
        capturedSamples += Int64(samples.count)
        return windower.append(samples).map { pending($0) }
    }

    mutating func flush() -> PendingWindow? {
        guard let window = windower.flush() else { return nil }
        return pending(window)
    }

    mutating func gap(seconds: Double, reason: String) -> PendingWindow {
        let start = windower.position
        let length = Int64((seconds * Double(PCM.sampleRate)).rounded())
        windower.skip(samples: length)
        defer { seq += 1 }
        return PendingWindow(seq: seq, start: Self.seconds(start), end: Self.seconds(start + length),
                             content: .gap(reason: reason), cutAt: .now)
    }

    private mutating func pending(_ window: AudioWindow) -> PendingWindow {
        defer { seq += 1 }
        return PendingWindow(seq: seq, start: Self.seconds(window.startSample), end: Self.seconds(window.endSample),
                             content: window.voiced ? .voiced(.memory(windower.speechOnly(window.samples))) : .silent,
                             cutAt: .now)
    }

    static func seconds(_ samples: Int64) -> Double { Double(samples) / Double(PCM.sampleRate) }
}

/// Turns the pipe's bytes into samples, keeping an odd byte for the next read.
struct SampleDecoder {
    private var carry: UInt8?
    private var scratch: [Int16] = []

    mutating func decode<R>(_ buffer: ByteBuffer, _ body: (UnsafeBufferPointer<Int16>) -> R) -> R {
        scratch.removeAll(keepingCapacity: true)
        buffer.withUnsafeReadableBytes { raw in
            var index = 0
            if let low = carry, raw.count > 0 {
                scratch.append(Int16(bitPattern: UInt16(low) | UInt16(raw[0]) << 8))
                index = 1
                carry = nil
            }
            let pairs = (raw.count - index) / 2
            scratch.reserveCapacity(scratch.count + pairs)
            for pair in 0..<pairs {
                let offset = index + pair * 2
                scratch.append(Int16(bitPattern: UInt16(raw[offset]) | UInt16(raw[offset + 1]) << 8))
            }
            if (raw.count - index) % 2 == 1 { carry = raw[raw.count - 1] }
        }
        return scratch.withUnsafeBufferPointer(body)
    }
}
