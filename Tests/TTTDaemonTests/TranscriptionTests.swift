import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Live transcription end to end: tttsim streams espeak-ng speech as FLV, tttd's pipeline runs the
/// real ffmpeg, cuts windows and sends them to the real scripts/asr-server (tiny.en), sometimes
/// through Fixtures/asr_faults.py; everything is recorded in a real PostgreSQL.
///
/// Serialized: each test streams in real time, and the one shared asr-server has two cores at most.
@Suite("live transcription", .serialized)
struct TranscriptionTests {
    /// Fast detection (DetectionTests' settings) and 4 s windows, so that a test hears several.
    static func config(_ sim: SimProcess, asr: String, maxPipelines: Int = 4) -> String {
        """
        tiktok:
          web_url: "\(sim.baseURL)"
          webcast_url: "\(sim.baseURL)"
          requests_per_second: 4
          concurrency: 2
        detection:
          interval: 1s
          offline_confirmations: 2
          live_recheck: 1s
          lease: 5s
        transcription:
          enabled: true
          base_url: "\(asr)/v1"
          model: tiny.en
          language: en
          window: 4s
          max_pipelines: \(maxPipelines)
        """
    }

    static let transcriptKeys: Set<String> = ["live_id", "seq", "start_s", "end_s", "text", "silent", "language", "flags"]
    static let pipelineKeys: Set<String> = ["id", "live_id", "username", "state", "started_at", "audio_s", "windows",
                                            "backlog", "gaps_s", "asr_p50_ms"]

    /// tttsim, a database, tttd on both, its accounts, and a follower of every event.
    struct Rig {
        let sim: SimProcess
        let database: TestDatabase
        let daemon: DaemonProcess
        let follow: EventFollower
        let config: String

        init(asr: String, accounts: Int = 1, maxPipelines: Int = 4, extraConfig: String = "") async throws {
            sim = SimProcess(accounts: accounts)
            try await sim.start()
            database = try await TestDatabase.create()
            config = TranscriptionTests.config(sim, asr: asr, maxPipelines: maxPipelines) + extraConfig
            daemon = try DaemonProcess(database: database, extraConfig: config)
            try await daemon.start()
            let added = try await daemon.ctl(["accounts", "add"] + (0..<accounts).map { "sim\($0)" })
            guard added.status == 0 else { throw HarnessError("accounts add: \(added)") }
            follow = try await EventFollower(daemon: daemon)
        }

        /// Goes live on tttsim and returns the live's id once tttd has seen it.
        func goLive(_ username: String, audio: String?) async throws -> Int {
            _ = try await sim.goLive(username, audio: audio)
            let started = try await follow.wait("live_started of \(username)") {
                $0["type"] as? String == "live_started" && $0["username"] as? String == username
            }
            guard let id = started.event["live_id"] as? Int else { throw HarnessError("live_started without live_id: \(started.event)") }
            return id
        }

        func pipelines(as user: String? = nil) async throws -> [[String: Any]] {
            let result = try await daemon.ctl(["pipelines", "--json"], as: user)
            guard result.status == 0, let list = try result.json() as? [[String: Any]] else {
                throw HarnessError("tttctl pipelines: \(result)")
            }
            return list
        }

        /// `tttctl live show ID --json`'s transcripts.
        func transcripts(_ liveID: Int) async throws -> [[String: Any]] {
            try await TranscriptionTests.transcripts(daemon, liveID)
        }

        /// The pipeline rows of a live: (audio_s, gaps_s, windows, state, reason).
        func pipelineRows(_ liveID: Int) async throws -> [(audio: Double, gaps: Double, windows: Int, state: String, reason: String)] {
            let text = try await database.psql(
                "SELECT audio_s, gaps_s, windows, state, coalesce(reason, '') FROM pipelines WHERE live_id = \(liveID) ORDER BY id")
            return text.split(separator: "\n").map { line in
                let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
                return (Double(fields[0]) ?? -1, Double(fields[1]) ?? -1, Int(fields[2]) ?? -1, fields[3], fields[4])
            }
        }

        /// Ends the live on tttsim and waits for its pipeline's `stopped`.
        @discardableResult
        func endLive(_ username: String, liveID: Int, from start: Int = 0) async throws -> [String: Any] {
            try await sim.endLive(username)
            // Two offline answers confirm the end, then the pipeline drains its backlog through the real
            // ASR, minutes on a loaded machine: the deadline guards against a hang only.
            return try await follow.waitForState("stopped", liveID: liveID, from: start, timeout: 180).event
        }

        /// Waits until the transcripts received from position `start` on contain every word.
        func hear(_ words: [String], liveID: Int, from start: Int = 0, timeout: Double = 60) async throws -> Int {
            let deadline = Date().addingTimeInterval(timeout)
            var heard = ""
            var position = start
            while !words.allSatisfy({ heard.contains($0) }) {
                let left = deadline.timeIntervalSinceNow
                guard left > 0 else { throw HarnessError("did not hear \(words) within \(timeout) s; heard: \(heard)") }
                let next = try await follow.waitForTranscript("speech", liveID: liveID, from: position, timeout: left)
                heard += " " + ((next.event["text"] as? String) ?? "").lowercased()
                position = next.index + 1
            }
            return position
        }
    }

    // MARK: Checks

    /// `tttctl live show ID --json`'s transcripts.
    static func transcripts(_ daemon: DaemonProcess, _ liveID: Int) async throws -> [[String: Any]] {
        let result = try await daemon.ctl(["live", "show", String(liveID), "--json"])
        guard result.status == 0, let live = try result.json() as? [String: Any],
              let transcripts = live["transcripts"] as? [[String: Any]] else {
            throw HarnessError("tttctl live show \(liveID): \(result)")
        }
        return transcripts
    }

    static func text(_ transcripts: [[String: Any]]) -> String {
        transcripts.compactMap { $0["text"] as? String }.joined(separator: " ").lowercased()
    }

    static func flags(_ transcript: [String: Any]) -> [String] { transcript["flags"] as? [String] ?? [] }

    static func duration(_ transcript: [String: Any]) -> Double {
        ((transcript["end_s"] as? Double) ?? .nan) - ((transcript["start_s"] as? Double) ?? .nan)
    }

    /// Consecutive windows from seq 0 and 0 s, each starting where the previous one ended.
    static func expectTiling(_ transcripts: [[String: Any]], sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(!transcripts.isEmpty, sourceLocation: sourceLocation)
        var previousEnd = 0.0
        for (index, transcript) in transcripts.enumerated() {
            let seq = transcript["seq"] as? Int, start = transcript["start_s"] as? Double, end = transcript["end_s"] as? Double
            #expect(seq == index, "seq \(seq.map(String.init) ?? "nil") at position \(index)", sourceLocation: sourceLocation)
            guard let start, let end else {
                Issue.record("no start_s/end_s in \(transcript)", sourceLocation: sourceLocation)
                continue
            }
            #expect(abs(start - previousEnd) <= 0.001, "window \(index) starts at \(start), the previous ended at \(previousEnd)",
                    sourceLocation: sourceLocation)
            #expect(end > start, "window \(index) is empty: \(start)–\(end)", sourceLocation: sourceLocation)
            previousEnd = end
        }
    }

    // MARK: Tests

    @Test("speech streamed by tttsim comes back as words: transcript events, live show, tttctl pipelines, pipeline states")
    func speechComesBack() async throws {
        let asr = try await ASRServer.shared.url()
        let speech = try await TestAudio.speech()
        let rig = try await Rig(asr: asr)
        let liveID = try await rig.goLive("sim0", audio: speech)

        let starting = try await rig.follow.waitForState("starting", liveID: liveID)
        #expect(Set(starting.event.keys).isSuperset(of: ["live_id", "state", "reason"]), "\(starting.event)")
        let capturing = try await rig.follow.waitForState("capturing", liveID: liveID, from: starting.index + 1)
        #expect(rig.follow.events("pipeline_state", liveID: liveID).first?["state"] as? String == "starting")

        _ = try await rig.hear(["fox", "evening"], liveID: liveID)

        let events = rig.follow.events("transcript", liveID: liveID)
        for event in events {
            #expect(Set(event.keys).isSuperset(of: Self.transcriptKeys), "\(event)")
            #expect(event["seq"] is Int && event["start_s"] is Double && event["end_s"] is Double && event["silent"] is Bool)
            #expect(event["flags"] is [Any], "\(event)")
            if event["silent"] as? Bool == false, !Self.flags(event).contains("skipped") {
                #expect(event["language"] as? String == "en", "\(event)")
            }
        }

        // While the pipeline runs: its figures in tttctl pipelines.
        let pipelines = try await rig.pipelines()
        #expect(pipelines.count == 1, "\(pipelines)")
        let pipeline = pipelines.first ?? [:]
        #expect(Set(pipeline.keys).isSuperset(of: Self.pipelineKeys), "\(pipeline)")
        #expect(pipeline["live_id"] as? Int == liveID)
        #expect(pipeline["username"] as? String == "sim0")
        #expect(pipeline["state"] as? String == "capturing", "\(pipeline)")
        #expect(pipeline["started_at"] is String)
        #expect((pipeline["audio_s"] as? Double ?? 0) >= (events.last?["end_s"] as? Double ?? .infinity), "\(pipeline)")
        #expect((pipeline["windows"] as? Int ?? 0) >= max(1, events.count), "\(pipeline)")
        #expect(pipeline["backlog"] is Int, "\(pipeline)")
        #expect(pipeline["gaps_s"] as? Double == 0, "\(pipeline)")
        #expect((pipeline["asr_p50_ms"] as? Int ?? 0) > 0, "\(pipeline)")

        // The same transcripts in live show.
        let shown = try await rig.transcripts(liveID)
        #expect(shown.count >= events.count)
        for transcript in shown { #expect(Set(transcript.keys).isSuperset(of: Self.transcriptKeys), "\(transcript)") }
        #expect(Self.text(shown).contains("fox") && Self.text(shown).contains("evening"), "\(Self.text(shown))")

        let stopped = try await rig.endLive("sim0", liveID: liveID, from: capturing.index + 1)
        #expect(stopped["reason"] as? String == "live ended", "\(stopped)")
        #expect(try await rig.pipelines().isEmpty)
        let final = try await rig.transcripts(liveID)
        #expect(final.count == rig.follow.events("transcript", liveID: liveID).count,
                "every recorded window was announced before stopped")
        #expect(try await rig.daemon.stop() == 0)
    }

    @Test("windows tile the stream: seq from 0, each starts where the previous ended, lengths add up to audio_s + gaps_s")
    func windowsTile() async throws {
        let asr = try await ASRServer.shared.url()
        let speech = try await TestAudio.speech()
        let rig = try await Rig(asr: asr)
        let liveID = try await rig.goLive("sim0", audio: speech)
        let capturing = try await rig.follow.waitForState("capturing", liveID: liveID)
        // Five windows: about 20 s of a 12 s loop, so the loop's seam is crossed too.
        try await rig.follow.waitForTranscript("the fifth window", liveID: liveID, from: capturing.index) {
            $0["seq"] as? Int == 4
        }
        try await rig.endLive("sim0", liveID: liveID, from: capturing.index + 1)

        let transcripts = try await rig.transcripts(liveID)
        Self.expectTiling(transcripts)
        #expect(transcripts.count >= 5)
        // Cut between half and twice the 4 s target, at whole 20 ms frames; only the last, cut
        // when the capture ended, may be shorter.
        for transcript in transcripts.dropLast() {
            let length = Self.duration(transcript)
            #expect(length >= 2 - 0.001 && length <= 8 + 0.001, "window length \(length): \(transcript)")
        }
        #expect(Self.duration(transcripts.last ?? [:]) <= 8 + 0.001)
        for transcript in transcripts where transcript["silent"] as? Bool == true {
            #expect(transcript["text"] as? String == "", "\(transcript)")
        }
        #expect(transcripts.contains { $0["silent"] as? Bool == false && !($0["text"] as? String ?? "").isEmpty })

        let rows = try await rig.pipelineRows(liveID)
        #expect(rows.count == 1, "\(rows)")
        if let row = rows.first {
            let total = transcripts.reduce(0) { $0 + Self.duration($1) }
            #expect(abs(total - (row.audio + row.gaps)) < 0.05,
                    "windows cover \(total) s; the pipeline captured \(row.audio) s with \(row.gaps) s of gaps")
            #expect(row.gaps == 0, "a healthy stream has no gap: \(row)")
            #expect(row.windows == transcripts.count)
            #expect(row.state == "stopped")
        }
        #expect(try await rig.daemon.stop() == 0)
    }

    @Test("silence is recorded as silent windows and never sent to the ASR")
    func silenceIsNotSent() async throws {
        let asr = try await ASRServer.shared.url()
        let proxy = try await FaultProxy.start(upstream: asr)
        let silence = try await TestAudio.silence()
        let rig = try await Rig(asr: proxy.baseURL)
        let liveID = try await rig.goLive("sim0", audio: silence)
        let capturing = try await rig.follow.waitForState("capturing", liveID: liveID)
        try await rig.follow.waitForTranscript("the third window", liveID: liveID, from: capturing.index) {
            $0["seq"] as? Int == 2
        }
        try await rig.endLive("sim0", liveID: liveID, from: capturing.index + 1)

        let transcripts = try await rig.transcripts(liveID)
        #expect(transcripts.count >= 3)
        Self.expectTiling(transcripts)
        for transcript in transcripts {
            #expect(transcript["silent"] as? Bool == true, "\(transcript)")
            #expect(transcript["text"] as? String == "", "\(transcript)")
            #expect(Self.flags(transcript).isEmpty, "\(transcript)")
        }
        #expect(rig.follow.events("transcript", liveID: liveID).allSatisfy { $0["silent"] as? Bool == true })
        let stats = try await proxy.stats()
        #expect(stats["requests"] as? Int == 0, "the ASR was asked: \(stats)")
        #expect(try await rig.daemon.stop() == 0)
    }

    @Test("ffmpeg killed, the stream dropped by tttsim, ffmpeg stalled: each time reconnecting, capturing again, the gap recorded, the timeline tiling")
    func captureRecovers() async throws {
        let asr = try await ASRServer.shared.url()
        let speech = try await TestAudio.speech()
        let rig = try await Rig(asr: asr)
        let liveID = try await rig.goLive("sim0", audio: speech)
        let capturing = try await rig.follow.waitForState("capturing", liveID: liveID)
        let first = try await rig.follow.waitForTranscript("first words", liveID: liveID, from: capturing.index) {
            !($0["text"] as? String ?? "").isEmpty
        }

        // 1. ffmpeg dies (kill -9): tttd's only child named ffmpeg.
        var ffmpeg = [ProcInfo]()
        try await eventually("tttd's ffmpeg child", timeout: 10) {
            ffmpeg = Proc.children(of: rig.daemon.pid, named: "ffmpeg").filter { $0.state != "Z" }
            return ffmpeg.count == 1
        }
        let killed = ffmpeg[0].pid
        kill(killed, SIGKILL)
        let reconnecting = try await rig.follow.waitForState("reconnecting", liveID: liveID, from: first.index + 1, timeout: 30)
        #expect((reconnecting.event["reason"] as? String ?? "").contains("ffmpeg"), "\(reconnecting.event)")
        let recaptured = try await rig.follow.waitForState("capturing", liveID: liveID, from: reconnecting.index + 1, timeout: 30)
        let gap = try await rig.follow.waitForTranscript("the capture gap", liveID: liveID, from: reconnecting.index + 1, timeout: 30) {
            Self.flags($0).contains("skipped") && ($0["reason"] as? String ?? "").hasPrefix("capture gap")
        }
        #expect(gap.event["silent"] as? Bool == false && gap.event["text"] as? String == "", "\(gap.event)")
        #expect(Self.duration(gap.event) > 0, "\(gap.event)")
        let afterKill = try await rig.follow.waitForTranscript("words after the restart", liveID: liveID, from: gap.index + 1) {
            !($0["text"] as? String ?? "").isEmpty
        }
        let restarted = Proc.children(of: rig.daemon.pid, named: "ffmpeg").filter { $0.state != "Z" }
        #expect(restarted.count == 1 && restarted.first?.pid != killed, "a new ffmpeg: \(restarted)")

        // 2. The stream is cut by tttsim (a CDN dropping the connection).
        try await rig.sim.fault(#"{"kind":"drop_stream","max":1}"#)
        let dropped = try await rig.follow.waitForState("reconnecting", liveID: liveID, from: max(afterKill.index, recaptured.index) + 1, timeout: 30)
        try await rig.follow.waitForState("capturing", liveID: liveID, from: dropped.index + 1, timeout: 30)
        let secondGap = try await rig.follow.waitForTranscript("the second capture gap", liveID: liveID, from: dropped.index + 1, timeout: 30) {
            Self.flags($0).contains("skipped") && ($0["reason"] as? String ?? "").hasPrefix("capture gap")
        }
        try await rig.follow.waitForTranscript("words after the drop", liveID: liveID, from: secondGap.index + 1) {
            !($0["text"] as? String ?? "").isEmpty
        }
        try await rig.sim.clearFaults()

        // 3. ffmpeg stalls (stopped: alive, but no bytes): tttd kills it after its stall timeout.
        var stalled = [ProcInfo]()
        try await eventually("tttd's new ffmpeg child", timeout: 10) {
            stalled = Proc.children(of: rig.daemon.pid, named: "ffmpeg").filter { $0.state != "Z" }
            return stalled.count == 1
        }
        let stallMark = rig.follow.events.count
        kill(stalled[0].pid, SIGSTOP)
        defer { Proc.killIfStopped(stalled[0].pid) }
        let stall = try await rig.follow.waitForState("reconnecting", liveID: liveID, from: stallMark, timeout: 40)
        #expect((stall.event["reason"] as? String ?? "").contains("no audio"), "\(stall.event)")
        try await rig.follow.waitForState("capturing", liveID: liveID, from: stall.index + 1, timeout: 30)
        let thirdGap = try await rig.follow.waitForTranscript("the stall's capture gap", liveID: liveID, from: stall.index + 1, timeout: 30) {
            Self.flags($0).contains("skipped") && ($0["reason"] as? String ?? "").hasPrefix("capture gap")
        }
        try await rig.follow.waitForTranscript("words after the stall", liveID: liveID, from: thirdGap.index + 1) {
            !($0["text"] as? String ?? "").isEmpty
        }
        try await rig.endLive("sim0", liveID: liveID, from: thirdGap.index + 1)

        let transcripts = try await rig.transcripts(liveID)
        Self.expectTiling(transcripts)
        let gaps = transcripts.filter { Self.flags($0).contains("skipped") }
        #expect(gaps.count == 3, "one gap per interruption: \(gaps)")
        #expect(gaps.allSatisfy { ($0["reason"] as? String ?? "").hasPrefix("capture gap") }, "\(gaps)")
        let rows = try await rig.pipelineRows(liveID)
        #expect(rows.count == 1, "one pipeline survived both interruptions: \(rows)")
        if let row = rows.first {
            let gapSeconds = gaps.reduce(0) { $0 + Self.duration($1) }
            #expect(row.gaps > 0 && abs(row.gaps - gapSeconds) < 0.01, "gaps_s \(row.gaps), gap windows \(gapSeconds) s")
            let total = transcripts.reduce(0) { $0 + Self.duration($1) }
            #expect(abs(total - (row.audio + row.gaps)) < 0.05, "windows \(total) s, audio_s \(row.audio) + gaps_s \(row.gaps)")
        }
        #expect(Self.text(transcripts).contains("fox") || Self.text(transcripts).contains("evening"))
        #expect(try await rig.daemon.stop() == 0)
    }

    @Test("an ASR answering 500, 429 with Retry-After, an HTML page, malformed JSON, a hang and resets loses no window")
    func asrFaultsLoseNothing() async throws {
        let asr = try await ASRServer.shared.url()
        let proxy = try await FaultProxy.start(upstream: asr)
        // Three windows meet two failures each before they go through; their retries are timed below.
        try await proxy.queue("""
            [{"status":500},{"status":429,"retry_after":3},{"forward":true},
             {"html":true},{"malformed":true},{"forward":true},
             {"timeout_s":2},{"reset":true},{"forward":true}]
            """)
        let speech = try await TestAudio.speech()
        let rig = try await Rig(asr: proxy.baseURL)
        let liveID = try await rig.goLive("sim0", audio: speech)
        let capturing = try await rig.follow.waitForState("capturing", liveID: liveID)

        // Past the faults: the queue is empty and two more voiced windows went through.
        try await eventually("the proxy served its faults", timeout: 60) {
            (try await proxy.stats())["queued"] as? Int == 0
        }
        let served = rig.follow.events("transcript", liveID: liveID).count
        try await rig.follow.waitForTranscript("two windows after the faults", liveID: liveID, from: capturing.index) {
            ($0["seq"] as? Int ?? 0) >= served + 1
        }
        try await rig.endLive("sim0", liveID: liveID, from: capturing.index + 1)

        let transcripts = try await rig.transcripts(liveID)
        Self.expectTiling(transcripts)
        let skipped = transcripts.filter { Self.flags($0).contains("skipped") }
        #expect(skipped.isEmpty, "windows lost: \(skipped)")
        let voiced = transcripts.filter { $0["silent"] as? Bool == false }
        #expect(voiced.count >= 4, "\(transcripts)")
        #expect(Self.text(transcripts).contains("fox"), "\(Self.text(transcripts))")

        let stats = try await proxy.stats()
        #expect(stats["faults"] as? Int == 6, "\(stats)")
        let kinds = stats["by_kind"] as? [String: Int] ?? [:]
        for kind in ["500", "429", "html", "malformed", "timeout", "reset"] { #expect(kinds[kind] == 1, "\(kind): \(kinds)") }
        // Every voiced window was sent until it went through, exactly once successfully.
        #expect(stats["forwarded"] as? Int == voiced.count, "\(stats)\n\(voiced)")

        // Back-off: the first retry after 1 s, then doubling, and never before Retry-After.
        let log = stats["log"] as? [[String: Any]] ?? []
        func gapAfter(_ index: Int) -> Double {
            guard index + 1 < log.count, let done = log[index]["done_t"] as? Double, let next = log[index + 1]["t"] as? Double else { return -1 }
            return next - done
        }
        if log.count >= 9 {
            #expect(gapAfter(0) >= 0.95, "after a 500, the first retry waits 1 s: \(gapAfter(0))")
            #expect(gapAfter(1) >= 2.9, "after a 429 with Retry-After: 3, the retry waits 3 s: \(gapAfter(1))")
            #expect(gapAfter(3) >= 0.95 && gapAfter(4) >= 1.9, "1 s then 2 s: \(gapAfter(3)), \(gapAfter(4))")
            #expect(gapAfter(6) >= 0.95 && gapAfter(7) >= 1.9, "1 s then 2 s: \(gapAfter(6)), \(gapAfter(7))")
            #expect((log[6]["done_t"] as? Double ?? 0) - (log[6]["t"] as? Double ?? 0) >= 1.9, "the hang lasted 2 s")
        } else {
            Issue.record("the proxy's log is short: \(log)")
        }
        #expect(try await rig.daemon.stop() == 0)
    }

    @Test("kill -9 of tttd leaves no ffmpeg behind, even a stopped one that writes nothing")
    func noOrphanFFmpeg() async throws {
        let asr = try await ASRServer.shared.url()
        let silence = try await TestAudio.silence()
        let rig = try await Rig(asr: asr)
        let liveID = try await rig.goLive("sim0", audio: silence)
        try await rig.follow.waitForState("capturing", liveID: liveID)
        var ffmpeg = [ProcInfo]()
        try await eventually("tttd's ffmpeg child", timeout: 10) {
            ffmpeg = Proc.children(of: rig.daemon.pid, named: "ffmpeg").filter { $0.state != "Z" }
            return ffmpeg.count == 1
        }
        let pid = ffmpeg[0].pid
        defer { Proc.killIfStopped(pid) }   // whatever happens, not left over by this test
        // Stopped, ffmpeg writes nothing, so a broken pipe cannot end it: only the parent-death
        // signal (or a process-group kill) can.
        kill(pid, SIGSTOP)
        rig.daemon.signal(SIGKILL)
        #expect(try await rig.daemon.waitForExit(timeout: 10) == 128 + SIGKILL)
        do {
            try await eventually("ffmpeg \(pid) gone after tttd's kill -9", timeout: 5) {
                guard let info = Proc.info(pid) else { return true }
                return info.state == "Z" || info.name != "ffmpeg"
            }
        } catch {
            Issue.record("\(error): \(Proc.info(pid).map { "\($0)" } ?? "gone")")
        }
    }

    @Test("after a kill -9, tttd restarted resumes the live's timeline and records the time nobody captured as a gap")
    func restartResumesTimeline() async throws {
        let asr = try await ASRServer.shared.url()
        let silence = try await TestAudio.silence()
        let rig = try await Rig(asr: asr)
        let liveID = try await rig.goLive("sim0", audio: silence)
        let capturing = try await rig.follow.waitForState("capturing", liveID: liveID)
        try await rig.follow.waitForTranscript("a first window", liveID: liveID, from: capturing.index)
        let killedAt = Date()
        rig.daemon.signal(SIGKILL)
        #expect(try await rig.daemon.waitForExit(timeout: 10) == 128 + SIGKILL)

        // tttd comes back (same socket, so the same node), and the CDN refuses its first three
        // stream requests: the new pipeline captures nothing until the fourth.
        try await rig.sim.fault(#"{"kind":"http_status","status":404,"paths":["/game/"],"max":3}"#)
        let before = Int(try await rig.database.psql("SELECT count(*) FROM transcripts WHERE live_id = \(liveID)")) ?? -1
        let restarted = try DaemonProcess(database: rig.database, extraConfig: rig.config, directory: rig.daemon.directory)
        try await restarted.start()
        let follow = try await EventFollower(daemon: restarted)
        // tttsim counts the refused stream requests; until the third, nothing can have been captured.
        try await eventually("three stream requests refused", timeout: 30) {
            (try await rig.sim.stats())["blocked"] as? Int ?? 0 >= 3
        }
        let uncaptured = Date().timeIntervalSince(killedAt) - 0.3
        let refused = try await follow.waitForState("reconnecting", liveID: liveID, timeout: 30)
        let recaptured = try await follow.waitForState("capturing", liveID: liveID, from: refused.index + 1, timeout: 30)
        let window = try await follow.waitForTranscript("a window after the restart", liveID: liveID, timeout: 30) {
            !Self.flags($0).contains("skipped")
        }
        let resumed = follow.events("transcript", liveID: liveID)
        #expect(resumed.first?["seq"] as? Int == before, "numbering resumes: \(resumed)")
        let gaps = resumed.prefix { Self.flags($0).contains("skipped") }
        #expect(gaps.allSatisfy { ($0["reason"] as? String ?? "").hasPrefix("capture gap") }, "\(gaps)")
        let recorded = gaps.reduce(0) { $0 + Self.duration($1) }
        #expect(recorded >= uncaptured, "the gaps recorded (\(recorded) s) cover the \(uncaptured) s at least that nothing captured: \(gaps)")

        try await rig.sim.endLive("sim0")
        try await follow.waitForState("stopped", liveID: liveID, from: max(window.index, recaptured.index) + 1)
        Self.expectTiling(try await Self.transcripts(restarted, liveID))
        let rows = try await rig.pipelineRows(liveID)
        #expect(rows.map(\.state) == ["failed", "stopped"], "\(rows)")
        #expect(rows.first?.reason == "tttd stopped unexpectedly", "\(rows)")
        #expect(follow.events("live_started").isEmpty && follow.events("live_ended").count == 1,
                "the same live went on across the restart: \(follow.events)")
        #expect(try await restarted.stop() == 0)
    }

    @Test("transcription.max_pipelines: a live over the cap gets a failed pipeline_state saying so, then a pipeline when a slot frees")
    func maxPipelines() async throws {
        let asr = try await ASRServer.shared.url()
        let silence = try await TestAudio.silence()
        let rig = try await Rig(asr: asr, accounts: 2, maxPipelines: 1)
        let first = try await rig.goLive("sim0", audio: silence)
        try await rig.follow.waitForState("starting", liveID: first)
        let second = try await rig.goLive("sim1", audio: silence)
        let refused = try await rig.follow.waitForState("failed", liveID: second, timeout: 30)
        #expect((refused.event["reason"] as? String ?? "").contains("max_pipelines"), "\(refused.event)")
        #expect(rig.follow.events("pipeline_state", liveID: second).allSatisfy { $0["state"] as? String == "failed" })
        let running = try await rig.pipelines()
        #expect(running.count == 1 && running.first?["live_id"] as? Int == first, "\(running)")

        let stopped = try await rig.endLive("sim0", liveID: first)
        #expect(stopped["reason"] as? String == "live ended")
        let starting = try await rig.follow.waitForState("starting", liveID: second, from: refused.index + 1, timeout: 30)
        try await rig.follow.waitForState("capturing", liveID: second, from: starting.index + 1, timeout: 30)
        #expect(rig.follow.events("pipeline_state", liveID: second).filter { $0["state"] as? String == "failed" }.count == 1,
                "the refusal is announced once")
        let now = try await rig.pipelines()
        #expect(now.count == 1 && now.first?["live_id"] as? Int == second, "\(now)")
        #expect(try await rig.daemon.stop() == 0)
    }

    @Test("a live that ended while its windows wait for a slow ASR holds no max_pipelines slot: the next live is captured at once, the ended one is transcribed to its end")
    func drainingHoldsNoSlot() async throws {
        let asr = try await ASRServer.shared.url()
        let proxy = try await FaultProxy.start(upstream: asr)
        // The ASR holds every request until released (a retry after tttd's timeout is held again).
        try await proxy.queue("[" + Array(repeating: #"{"hold":true}"#, count: 12).joined(separator: ",") + "]")
        let speech = try await TestAudio.speech()
        let rig = try await Rig(asr: proxy.baseURL, accounts: 2, maxPipelines: 1)
        let first = try await rig.goLive("sim0", audio: speech)
        try await rig.follow.waitForState("capturing", liveID: first)
        try await eventually("a window of the first live waits at the ASR", timeout: 60) {
            (try await proxy.stats())["held"] as? Int ?? 0 >= 1
        }
        try await rig.sim.endLive("sim0")
        try await rig.follow.wait("live_ended of sim0") {
            $0["type"] as? String == "live_ended" && $0["live_id"] as? Int == first
        }

        let second = try await rig.goLive("sim1", audio: speech)
        try await rig.follow.waitForState("capturing", liveID: second)
        #expect(!rig.follow.events("pipeline_state", liveID: second).contains { $0["state"] as? String == "failed" },
                "refused: \(rig.follow.events("pipeline_state", liveID: second))")
        // The first pipeline is still there, transcribing what it cut before the live ended.
        #expect(!rig.follow.events("pipeline_state", liveID: first).contains { $0["state"] as? String == "stopped" })
        let running = try await rig.pipelines()
        #expect(Set(running.compactMap { $0["live_id"] as? Int }) == [first, second], "\(running)")

        try await proxy.release()
        let stopped = try await rig.follow.waitForState("stopped", liveID: first, timeout: 180)
        #expect(stopped.event["reason"] as? String == "live ended", "\(stopped.event)")
        let transcripts = try await rig.transcripts(first)
        Self.expectTiling(transcripts)
        #expect(!transcripts.contains { Self.flags($0).contains("skipped") }, "windows lost: \(transcripts)")
        #expect(Self.text(transcripts).contains("fox"), "\(Self.text(transcripts))")
        #expect(try await rig.daemon.stop() == 0)
    }

    @Test("SIGTERM while the ASR holds a window: tttd cancels the request and exits well within systemd's TimeoutStopSec (60 s), not after the ASR's 60 s timeout; the window is recorded as not transcribed")
    func stoppingCancelsTheASRRequest() async throws {
        let asr = try await ASRServer.shared.url()
        let proxy = try await FaultProxy.start(upstream: asr)
        try await proxy.queue("[" + Array(repeating: #"{"hold":true}"#, count: 12).joined(separator: ",") + "]")
        let speech = try await TestAudio.speech()
        let rig = try await Rig(asr: proxy.baseURL)
        let liveID = try await rig.goLive("sim0", audio: speech)
        try await rig.follow.waitForState("capturing", liveID: liveID)
        try await eventually("a window waits at the ASR", timeout: 60) {
            (try await proxy.stats())["held"] as? Int ?? 0 >= 1
        }
        rig.daemon.signal(SIGTERM)
        // A hang guard below the ASR's timeout: waiting for the held answer would take 60 s.
        #expect(try await rig.daemon.waitForExit(timeout: 45) == 0)
        let skipped = try await rig.database.psql(
            "SELECT count(*) FROM transcripts WHERE live_id = \(liveID) AND skipped AND reason LIKE '%tttd stopping%'")
        #expect((Int(skipped) ?? 0) >= 1, "windows recorded as not transcribed: \(skipped)")
        try await proxy.release()
    }

    @Test("a stream that never gives audio: the pipeline gives up after transcription.give_up_after (failed, one pipeline_failed delivery per live and hour), the live is tried again and captured once the stream is back")
    func captureGivesUp() async throws {
        let asr = try await ASRServer.shared.url()
        let speech = try await TestAudio.speech()
        let rig = try await Rig(asr: asr, extraConfig: """

              give_up_after: 3s
            alerts:
              webhooks:
                - name: ops
                  url: "http://127.0.0.1:9/unreachable"
                  secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
                  events: [pipeline_failed]
            """)
        // The CDN answers 404 for every stream: ffmpeg fails each time.
        try await rig.sim.fault(#"{"kind":"http_status","status":404,"paths":["/game/"]}"#)
        let liveID = try await rig.goLive("sim0", audio: speech)
        let failed = try await rig.follow.waitForState("failed", liveID: liveID, timeout: 60)
        let reason = failed.event["reason"] as? String ?? ""
        #expect(reason.contains("no audio for") && reason.contains("giving up"), "\(failed.event)")
        // A minute at most (here give_up_after, 3 s) later, a new pipeline; it fails too.
        let retried = try await rig.follow.waitForState("starting", liveID: liveID, from: failed.index + 1, timeout: 60)
        let failedAgain = try await rig.follow.waitForState("failed", liveID: liveID, from: retried.index + 1, timeout: 60)

        // Both failures are events; the channel got one delivery for them, not one per attempt.
        let deliveries = try await rig.database.psql("""
            SELECT e.payload->>'state', count(d.id) FROM events e LEFT JOIN deliveries d ON d.event_id = e.id
            WHERE e.live_id = \(liveID) AND e.type = 'pipeline_state' AND e.payload->>'state' = 'failed'
            GROUP BY e.id, e.payload ORDER BY e.id
            """)
        let counts = deliveries.split(separator: "\n").compactMap { $0.split(separator: "|").last.flatMap { Int($0) } }
        #expect(counts.count >= 2 && counts.first == 1 && counts.dropFirst().allSatisfy { $0 == 0 }, "deliveries per failed event: \(deliveries)")

        // The stream is back: the next pipeline captures and transcribes.
        try await rig.sim.clearFaults()
        let capturing = try await rig.follow.waitForState("capturing", liveID: liveID, from: failedAgain.index + 1, timeout: 60)
        try await rig.follow.waitForTranscript("words once the stream is back", liveID: liveID, from: capturing.index) {
            !($0["text"] as? String ?? "").isEmpty
        }
        let rows = try await rig.pipelineRows(liveID)
        #expect(rows.filter { $0.state == "failed" }.count >= 2, "\(rows)")
        #expect(try await rig.daemon.stop() == 0)
    }

    @Test("tttctl pipeline stop: an admin stops it with the reason, no new pipeline starts for that live; a viewer is refused")
    func adminStop() async throws {
        let asr = try await ASRServer.shared.url()
        let silence = try await TestAudio.silence()
        let rig = try await Rig(asr: asr, accounts: 2)
        let liveID = try await rig.goLive("sim0", audio: silence)
        let capturing = try await rig.follow.waitForState("capturing", liveID: liveID)
        let viewing = try await rig.pipelines(as: "ttt-test-viewer")
        #expect(viewing.count == 1, "viewers may list pipelines: \(viewing)")
        guard let id = viewing.first?["id"] as? Int else { throw HarnessError("no pipeline id: \(viewing)") }

        let viewer = try await rig.daemon.ctl(["pipeline", "stop", String(id)], as: "ttt-test-viewer")
        #expect(viewer.status == 1, "\(viewer)")
        #expect(viewer.stderr.contains("admin role"), "\(viewer)")
        #expect(try await rig.pipelines().first?["state"] as? String == "capturing", "the viewer's request changed nothing")

        let admin = try await rig.daemon.ctl(["pipeline", "stop", String(id), "--json"], as: "ttt-test-admin")
        #expect(admin.status == 0, "\(admin)")
        #expect((try? admin.json() as? [String: Any])?["id"] as? Int == id, "\(admin)")
        let stopped = try await rig.follow.waitForState("stopped", liveID: liveID, from: capturing.index + 1, timeout: 30)
        #expect((stopped.event["reason"] as? String ?? "").contains("stopped by"), "\(stopped.event)")
        #expect(try await rig.pipelines().isEmpty)

        // A barrier instead of a sleep: the supervisor claims lives oldest first, so once it has
        // started a pipeline for a newer live it has passed over the stopped one.
        let other = try await rig.goLive("sim1", audio: silence)
        try await rig.follow.waitForState("starting", liveID: other, timeout: 30)
        #expect(rig.follow.events("pipeline_state", liveID: liveID).filter { $0["state"] as? String == "starting" }.count == 1)
        #expect(try await rig.pipelineRows(liveID).count == 1)
        let active = try await rig.daemon.ctl(["lives", "--active", "--json"])
        #expect((try active.json() as? [[String: Any]])?.contains { $0["id"] as? Int == liveID } == true,
                "the live itself goes on: \(active)")
        let again = try await rig.daemon.ctl(["pipeline", "stop", String(id)])
        #expect(again.status == 1, "stopping a stopped pipeline: \(again)")
        #expect(try await rig.daemon.stop() == 0)
    }
}
