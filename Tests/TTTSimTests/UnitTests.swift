import Foundation
import Hummingbird
import Testing
@testable import TTTSim

@Suite struct UnitTests {
    @Test func jsonKeepsOrderExactIntegersAndEscapes() {
        let value: JSONValue = ["room_id": .int(7_684_008_970_436_823_815), "s": "a&b<c>\"\n\u{1}", "n": nil, "l": [true, .double(1.5)]]
        #expect(value.text == #"{"room_id":7684008970436823815,"s":"a\u0026b\u003cc\u003e\"\n\u0001","n":null,"l":[true,1.5]}"#)
        guard case .int(let id) = value["room_id"] else { Issue.record("room_id is not an integer"); return }
        #expect(id == 7_684_008_970_436_823_815)
    }

    @Test func sha256AndHMACMatchPublishedVectors() {
        #expect(SHA256.hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(SHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        let long = Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)
        #expect(SHA256.hex(SHA256.hash(long)) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // RFC 4231 test case 2.
        #expect(SHA256.hex(SHA256.hmac(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func signerAcceptsOnlyItsOwnUnexpiredSigns() {
        let signer = StreamSigner(key: testKey)
        let now = Date()
        let expire = Int64(now.timeIntervalSince1970) + 100
        let sign = signer.sign(streamId: 12, expire: expire)
        #expect(sign.count == 32)
        #expect(signer.isValid(streamId: 12, expire: expire, sign: sign, now: now))
        #expect(!signer.isValid(streamId: 13, expire: expire, sign: sign, now: now))
        #expect(!signer.isValid(streamId: 12, expire: expire + 1, sign: sign, now: now))
        #expect(!signer.isValid(streamId: 12, expire: expire, sign: sign, now: now.addingTimeInterval(101)))
        #expect(!StreamSigner(key: [1]).isValid(streamId: 12, expire: expire, sign: sign, now: now))
        #expect(StreamURLs.streamId(fileName: "stream-1272339927704012379.flv") == 1_272_339_927_704_012_379)
        #expect(StreamURLs.streamId(fileName: "stream-12_ld.flv") == 12)
        #expect(StreamURLs.streamId(fileName: "stream-12_xx.flv") == nil)
        #expect(StreamURLs.streamId(fileName: "stream-.flv") == nil)
    }

    @Test func endpointsAreRecognised() {
        #expect(TikTokEndpoint(path: "/api-live/user/room/") == .userRoom)
        #expect(TikTokEndpoint(path: "/api-live/user/room") == .userRoom)
        #expect(TikTokEndpoint(path: "/webcast/room/check_alive/") == .checkAlive)
        #expect(TikTokEndpoint(path: "/webcast/room/info/") == .roomInfo)
        #expect(TikTokEndpoint(path: "/@alice/live") == .livePage)
        #expect(TikTokEndpoint(path: "/game/stream-1.flv") == .stream)
        #expect(TikTokEndpoint(path: "/_sim/stats") == nil)
    }

    @Test func statsMaxRPSIsASlidingSecond() {
        let stats = RequestStats()
        let t0 = ContinuousClock.now
        for ms in [0, 100, 900, 1050, 1800, 1850, 1900, 1950, 3000] {
            stats.record(path: "/x", now: t0 + .milliseconds(ms))
        }
        // The window is (t − 1 s, t]: 1050, 1800, 1850, 1900 and 1950 ms are the most in one second.
        #expect(stats.snapshot().maxRPS == 5)
        #expect(stats.snapshot().requests == ["/x": 9])
        stats.reset()
        #expect(stats.snapshot().maxRPS == 0)
    }

    @Test func scheduleParsesCSVAndJSON() throws {
        let csv = """
            username,start_s,duration_s,audio
            alice,0,60,speech.wav
            bob,30.5,120,
            "carol",10,5,/abs/x.wav
            """
        let entries = try Schedule.parse(csv, relativeTo: "/data")
        #expect(entries == [
            ScheduleEntry(username: "alice", start_s: 0, duration_s: 60, audio: "/data/speech.wav"),
            ScheduleEntry(username: "bob", start_s: 30.5, duration_s: 120, audio: nil),
            ScheduleEntry(username: "carol", start_s: 10, duration_s: 5, audio: "/abs/x.wav"),
        ])
        let json = #"[{"username":"dan","start_s":1,"duration_s":2,"audio":"a.wav","title":"T","loop":false}]"#
        #expect(try Schedule.parse(json, relativeTo: "/d") == [
            ScheduleEntry(username: "dan", start_s: 1, duration_s: 2, audio: "/d/a.wav", title: "T", loop: false),
        ])
        #expect(throws: ScheduleError.self) { try Schedule.parse("user,start\nx,1") }
        #expect(throws: ScheduleError.self) { try Schedule.parse("username,start_s,duration_s\nx,soon,1") }
        #expect(throws: ScheduleError.self) { try Schedule.parse(#"[{"username":"x","start_s":1,"duration_s":0}]"#) }
        #expect(Schedule.splitCSVLine(#"a,"b,c","d""e""#) == ["a", "b,c", #"d"e"#])
    }

    @Test func scheduleFileLoads() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tttsim-schedule-\(UUID().uuidString).csv")
        try "username,start_s,duration_s,audio\nsim0,0,1,tone.wav\n".write(to: url, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: url) }
        let entries = try Schedule.load(path: url.path)
        #expect(entries.first?.audio == url.deletingLastPathComponent().appendingPathComponent("tone.wav").path)
        #expect(throws: ScheduleError.self) { try Schedule.load(path: "/no/such/schedule.csv") }
    }

    @Test func flvParsesFFmpegOutputAndLoopsTimestamps() async throws {
        let tone = try await makeTone(seconds: 1)
        defer { try? FileManager.default.removeItem(atPath: tone) }
        let audio = try await AudioEncoder().encode(file: tone)
        #expect(audio.frames.count > 10)
        #expect((950...1150).contains(audio.durationMs))
        #expect(audio.frames.first?.timestamp == 0)
        #expect(FLVAudio.frameDurationMs(sequenceHeader: audio.sequenceHeader.data) == 64)  // 1024 samples at 16 kHz

        // Write two loops and parse them back: timestamps continue across the loop.
        var buffer = ByteBuffer()
        FLVWriter.writeHeader(into: &buffer)
        FLVWriter.write(audio.sequenceHeader, timestamp: 0, into: &buffer)
        var cursor = FLVCursor(audio: audio, loop: true)
        cursor.write(upTo: audio.durationMs * 2 - 1, into: &buffer)
        let reparsed = try FLVAudio(parsing: buffer)
        #expect(reparsed.frames.count == audio.frames.count * 2)
        #expect(Int(reparsed.frames[audio.frames.count].timestamp) == audio.durationMs)
        #expect(zip(reparsed.frames, reparsed.frames.dropFirst()).allSatisfy { $0.timestamp < $1.timestamp })

        var once = FLVCursor(audio: audio, loop: false)
        var sink = ByteBuffer()
        once.write(upTo: .max, into: &sink)
        #expect(once.finished)
        #expect(throws: FLVError.notFLV) { try FLVAudio(parsing: ByteBuffer(string: "nope, not an FLV file")) }
    }

    @Test func silenceIsEncodedOncePerProcess() async throws {
        let library = AudioLibrary(encoder: AudioEncoder())
        async let first = library.audio(file: nil)
        async let second = library.audio(file: nil)
        let (a, b) = try await (first, second)
        #expect(a.frames.count == b.frames.count)
        #expect(a.durationMs >= 9000)
        await #expect(throws: (any Error).self) { try await library.audio(file: "/no/such/audio.wav") }
    }
}
