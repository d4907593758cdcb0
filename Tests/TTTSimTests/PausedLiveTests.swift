import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import TTTSim

/// A live its host paused (TikTok's status 3, uncertain in TIKTOK.md): `PATCH /_sim/lives/{username}`.
@Suite struct PausedLiveTests {
    @Test("a paused live is status 3 with its room and no stream data, alive for check_alive, and 2 again once resumed")
    func pausedAndResumed() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            let roomId = try await client.goLive("alice")
            let paused = try await client.patch("/_sim/lives/alice", json: #"{"paused":true}"#)
            #expect(paused.status == .ok, "\(paused.text)")
            #expect(try paused.object["paused"] as? Bool == true)

            let answer = try await client.get("/api-live/user/room/?aid=1988&uniqueId=alice&sourceType=54").object
            let data = try #require(answer["data"] as? [String: Any])
            let user = try #require(data["user"] as? [String: Any])
            let room = try #require(data["liveRoom"] as? [String: Any])
            #expect(user["status"] as? Int == 3)
            #expect(user["roomId"] as? String == roomId)
            #expect(room["status"] as? Int == 3)
            #expect(room["streamData"] == nil)

            let info = try await client.get("/webcast/room/info/?aid=1988&room_id=\(roomId)").object
            #expect((info["data"] as? [String: Any])?["status"] as? Int == 3)
            let alive = try await client.get("/webcast/room/check_alive/?aid=1988&room_ids=\(roomId)").object
            #expect(((alive["data"] as? [[String: Any]])?.first)?["alive"] as? Bool == true)
            let page = try await client.get("/@alice/live").text
            #expect(page.contains(#""status":3"#))
            let lives = try await client.get("/_sim/lives").array
            #expect(lives.first?["paused"] as? Bool == true)

            #expect(try await client.patch("/_sim/lives/alice", json: #"{"paused":false}"#).status == .ok)
            let resumed = try await client.get("/api-live/user/room/?aid=1988&uniqueId=alice&sourceType=54").object
            let resumedRoom = try #require((resumed["data"] as? [String: Any])?["liveRoom"] as? [String: Any])
            #expect(resumedRoom["status"] as? Int == 2)
            #expect(resumedRoom["streamData"] != nil)
        }
    }

    @Test("pausing an account that is not live, or with a body that says nothing, is refused and changes nothing")
    func refused() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            try await client.post("/_sim/accounts", json: #"{"username":"bob"}"#)
            #expect(try await client.patch("/_sim/lives/bob", json: #"{"paused":true}"#).status == .notFound)
            #expect(try await client.patch("/_sim/lives/nobody", json: #"{"paused":true}"#).status == .notFound)
            _ = try await client.goLive("carol")
            #expect(try await client.patch("/_sim/lives/carol", json: #"{}"#).status == .badRequest)
            let lives = try await client.get("/_sim/lives").array
            #expect(lives.first?["paused"] as? Bool == false)
        }
    }
}

extension TestClientProtocol {
    func patch(_ uri: String, json: String) async throws -> TestResponse {
        try await execute(uri: uri, method: .patch, headers: [.contentType: "application/json"], body: ByteBuffer(string: json))
    }
}

/// TikTok refusing room info to a logged-in session (throttling, an expired session).
@Suite struct RoomInfoRefusedFaultTests {
    @Test("the room_info_refused fault answers 4003110 to room/info even with a session, and touches no other endpoint")
    func refusedWithSession() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            let roomId = try await client.goLive("dave", restricted: true)
            let uri = "/webcast/room/info/?aid=1988&room_id=\(roomId)"
            let session: HTTPFields = [.cookie: "tt-target-idc=useast1a; sessionid=abc123; sid_tt=abc123"]
            #expect(try await client.get(uri, headers: session).object["status_code"] as? Int == 0)

            try await client.post("/_sim/faults", json: #"{"kind":"room_info_refused"}"#)
            let refused = try await client.get(uri, headers: session).object
            #expect(refused["status_code"] as? Int == 4003110)
            #expect(((refused["extra"] as? [String: Any])?["now"] as? Int ?? 0) > 0)
            let lookup = try await client.get("/api-live/user/room/?aid=1988&uniqueId=dave&sourceType=54", headers: session).object
            #expect(lookup["statusCode"] as? Int == 0)

            try await client.delete("/_sim/faults")
            #expect(try await client.get(uri, headers: session).object["status_code"] as? Int == 0)
        }
    }
}

/// TIKTOK.md: 10011 "Request params error" has also been seen for age-restricted rooms.
@Suite struct RestrictedCodeTests {
    @Test("an account made restricted with code 10011 gets that answer from room/info without a session; only the two codes are taken")
    func code10011() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            try await client.post("/_sim/accounts", json: #"{"username":"eve","restricted":true,"restricted_code":10011}"#)
            let roomId = try #require(try await client.post("/_sim/lives", json: #"{"username":"eve"}"#).object["room_id"] as? String)
            let uri = "/webcast/room/info/?aid=1988&room_id=\(roomId)"
            #expect(try await client.get(uri).object["status_code"] as? Int == 10011)
            let session: HTTPFields = [.cookie: "tt-target-idc=useast1a; sessionid=abc123"]
            #expect(try await client.get(uri, headers: session).object["status_code"] as? Int == 0)
            #expect(try await client.post("/_sim/accounts", json: #"{"username":"eve","restricted_code":404}"#).status == .badRequest)
            #expect(try await client.get("/_sim/accounts").array.first?["restricted_code"] as? Int == 10011)
        }
    }
}
