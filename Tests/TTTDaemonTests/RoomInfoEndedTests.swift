import Foundation
import Testing

/// tttd against tttsim: the account's answer says live without stream URLs, and the room/info tttd
/// then asks for them says the room has ended (the live ended between the two requests).
@Suite("live detection: room info says the room ended")
struct RoomInfoEndedTests {
    @Test("the account's answer says live, room info then says the room ended: no live is opened")
    func roomEndedBetweenTheAnswers() async throws {
        // Age-restricted: api-live gives no stream URLs to tttd (which never sends its session
        // there), so tttd asks room/info for them, with its session, and gets the room's status.
        // A lease longer than the held request: the answer is still this node's to record, and no
        // other lookup of the account runs meanwhile.
        let (sim, database, daemon) = try await DetectionTests.watching(
            ["adults_only"], lease: "30s", environment: ["TTTD_SECRETS_TIKTOK_SESSION": "test-session"]
        ) { sim in
            try await DetectionTests.restrictedAccount(sim)
            // room/info is held long enough for the test to end the live meanwhile, and answered well
            // within tttd's 10 s timeout: it then reads the ended room (status 4).
            try await sim.fault(#"{"kind":"delay","ms":7000,"paths":["/webcast/room/info/"]}"#)
        }
        let follow = try await FollowProcess(daemon: daemon, arguments: ["--all"])

        _ = try await sim.goLive("adults_only")
        try await sim.waitForRequests(to: "/webcast/room/info/", atLeast: 1)
        try await sim.endLive("adults_only")
        // The account stays leased while its check waits for room/info: the lookups after this
        // one come once that check's answer was recorded.
        let lookups = try await sim.requests(to: "/api-live/user/room/")
        try await sim.waitForRequests(to: "/api-live/user/room/", atLeast: lookups + 2)

        #expect(try await database.psql("SELECT count(*) FROM lives") == "0", "\(daemon.log.suffix(3000))")
        #expect(follow.events.filter { $0["type"] as? String == "live_started" }.isEmpty, "\(follow.events)")
        #expect(try await sim.requests(to: "/webcast/room/info/") == 1, "room/info was asked once, for the live that ended")
        #expect(try await daemon.stop() == 0)
    }
}
