import Foundation
import Testing

/// A live its host pauses (status 3) is the same live: tttd against tttsim.
@Suite("paused lives", .timeLimit(.minutes(3)))
struct PausedLiveTests {
    @Test("a paused live is neither ended nor started again, by lookups or check_alive; its end after the pause is seen")
    func pauseKeepsTheLive() async throws {
        let (sim, database, daemon) = try await DetectionTests.watching(["sim0"], simAccounts: 1)
        let follow = try await FollowProcess(daemon: daemon, arguments: ["--all"])
        let room = try await sim.goLive("sim0")
        _ = try await follow.next("live_started")

        try await sim.pause("sim0")
        // More than `offline_confirmations` answers of each kind while paused: what would end the
        // live if status 3 counted as offline, or open a second one if it were a new live. First
        // the lookups alone (check_alive failing, so that no "still alive" resets their streak),
        // then check_alive too.
        try await sim.fault(#"{"kind": "http_status", "status": 500, "paths": ["/webcast/room/check_alive/"]}"#)
        let lookups = try await sim.requests(to: "/api-live/user/room/")
        try await sim.waitForRequests(to: "/api-live/user/room/", atLeast: lookups + 3)
        #expect(try await database.psql("SELECT count(*), bool_and(status = 'live' AND room_id = '\(room)') FROM lives") == "1|t")
        try await sim.clearFaults()
        let alive = try await sim.requests(to: "/webcast/room/check_alive/")
        try await sim.waitForRequests(to: "/webcast/room/check_alive/", atLeast: alive + 3)
        #expect(follow.events.map { $0["type"] as? String } == ["live_started"])
        #expect(try await database.psql("SELECT count(*), bool_and(status = 'live' AND room_id = '\(room)') FROM lives") == "1|t")

        try await sim.pause("sim0", false)
        try await sim.endLive("sim0")
        let ended = try await follow.next("live_ended")
        #expect(ended["reason"] as? String == "offline")
        #expect(try await database.psql("SELECT count(*) FROM events WHERE type = 'live_started'") == "1")
        #expect(try await daemon.stop() == 0)
    }
}
