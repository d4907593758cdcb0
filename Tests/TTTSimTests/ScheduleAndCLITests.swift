import Foundation
import NIOCore
import Synchronization
import TestSupport
import Testing
@testable import TTTSim

@Suite struct ScheduleAndCLITests {
    @Test func scheduleEntryGoesLiveThenEnds() async throws {
        let sim = makeSimulator()
        // What was live at each wait: nothing before the start, the scheduled live during it.
        let seen = Mutex<[(wait: Duration, live: Bool)]>([])
        var service = SimulatorService(simulator: sim, schedule: [])
        service.sleep = { instant in
            let live = sim.state.accountAndLive("sched")?.1 != nil
            seen.withLock { $0.append((sim.startedAt.duration(to: instant), live)) }
        }
        await service.play(ScheduleEntry(username: "Sched", start_s: 12, duration_s: 30))
        let waits = seen.withLock { $0 }
        #expect(waits.count == 2)
        #expect(waits.first?.wait == .seconds(12))
        #expect(waits.first?.live == false)
        #expect(waits.last?.live == true)
        let account = try #require(sim.state.account("sched"))  // created by the schedule
        let room = try #require(account.lastRoomId.flatMap { sim.state.room($0) })
        #expect(!room.isLive)
        #expect(room.loop)  // scheduled lives loop their audio
    }

    /// The built executable, next to the test bundle (absent when only the tests were built).
    static let executable: String? = {
        let directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [directory, directory.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("tttsim").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }()

    @Test
    func executablePrintsItsAddressAndStopsOnSIGTERM() async throws {
        let schedule = FileManager.default.temporaryDirectory.appendingPathComponent("tttsim-\(UUID().uuidString).json")
        try #"[{"username":"later","start_s":3600,"duration_s":60}]"#.write(to: schedule, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: schedule) }

        let process = Process()
        let executable = try #require(Self.executable)
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--listen", "127.0.0.1:0", "--accounts", "2", "--seed", "5", "--schedule", schedule.path]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        let line = try #require(await firstLine(of: stdout.fileHandleForReading))
        #expect(line.hasPrefix("tttsim listening on http://127.0.0.1:"))
        let port = try #require(Int(line.split(separator: ":").last ?? ""))
        #expect(port > 0)

        // An open looping stream must not hold up a graceful stop.
        let live = try await run(["curl", "-sS", "-XPOST", "http://127.0.0.1:\(port)/_sim/lives", "-d", #"{"username":"sim1"}"#])
        #expect(String(decoding: live.stdout, as: UTF8.self).contains("room_id"))
        let info = try await run(["curl", "-sS", "http://127.0.0.1:\(port)/api-live/user/room/?aid=1988&uniqueId=sim1&sourceType=54"])
        let body = try #require(JSONSerialization.jsonObject(with: info.stdout) as? [String: Any])
        let pull = try #require((((body["data"] as? [String: Any])?["liveRoom"] as? [String: Any])?["streamData"] as? [String: Any])?["pull_data"] as? [String: Any])
        let streamText = try #require(pull["stream_data"] as? String)
        let streamData = try #require(JSONSerialization.jsonObject(with: Data(streamText.utf8)) as? [String: Any])
        let flvText = try #require((((streamData["data"] as? [String: Any])?["ao"] as? [String: Any])?["main"] as? [String: Any])?["flv"] as? String)
        let flv = try #require(URL(string: flvText))
        #expect(flv.port == port)

        try await withRawConnection(port: port, host: "127.0.0.1") { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET \(flv.path)?\(flv.query ?? "") HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n\r\n"))
            var iterator = inbound.makeAsyncIterator()
            var received = ByteBuffer()
            while received.readableBytesView.firstRange(of: Array("FLV".utf8)) == nil {
                var chunk = try #require(try await iterator.next())
                received.writeBuffer(&chunk)
            }
            let start = ContinuousClock.now
            process.interrupt()  // SIGINT, handled like SIGTERM
            #expect(await exitStatus(of: process) == 0)
            // An open stream must not hold the shutdown up (a graceful shutdown waiting on it would
            // never end); the bound is a hang guard, not a speed target, on a loaded machine.
            #expect(start.duration(to: .now) < .seconds(60))
        }
    }

    private func firstLine(of handle: FileHandle) async -> String? {
        let lines = AsyncStream.makeStream(of: String?.self)
        let buffer = Mutex(Data())
        handle.readabilityHandler = { handle in
            let data = handle.availableData
            if data.isEmpty {
                lines.continuation.yield(nil)
                return
            }
            let line: String? = buffer.withLock { buffer in
                buffer.append(data)
                guard let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
                return String(decoding: buffer[..<newline], as: UTF8.self)
            }
            if let line { lines.continuation.yield(line) }
        }
        defer { handle.readabilityHandler = nil }
        return await lines.stream.first { _ in true } ?? nil
    }
}
