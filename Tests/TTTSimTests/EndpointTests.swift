import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
@testable import TTTSim

/// TikTok's endpoints, through the router (no sockets), with live data created by the control API.
@Suite struct EndpointTests {
    @Test func liveUserRoomHasTikTokShape() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            let roomId = try await client.goLive("Alice", extra: #","title":"Bonsoir""#)
            let response = try await client.get("/api-live/user/room/?aid=1988&uniqueId=alice&sourceType=54")
            #expect(response.status == .ok)
            #expect(response.contentType == "application/json; charset=utf-8")
            let body = try response.object
            #expect(body["statusCode"] as? Int == 0)
            #expect(body["message"] as? String == "")
            #expect((body["extra"] as? [String: Any])?.isEmpty == true)
            let data = try #require(body["data"] as? [String: Any])
            let user = try #require(data["user"] as? [String: Any])
            #expect(user["uniqueId"] as? String == "alice")
            #expect(user["roomId"] as? String == roomId)
            #expect(user["status"] as? Int == 2)
            #expect((user["id"] as? String)?.count == 19)
            #expect(user["nickname"] as? String == "alice")
            let room = try #require(data["liveRoom"] as? [String: Any])
            #expect(room["status"] as? Int == 2)
            #expect(room["title"] as? String == "Bonsoir")
            let start = try #require(room["startTime"] as? Int)
            #expect(abs(Double(start) - Date().timeIntervalSince1970) < 60)
            #expect((room["streamId"] as? String)?.count == 19)
            #expect(((room["liveRoomStats"] as? [String: Any])?["userCount"] as? Int ?? 0) > 0)
            let pull = try #require((room["streamData"] as? [String: Any])?["pull_data"] as? [String: Any])
            #expect(((pull["options"] as? [String: Any])?["qualities"] as? [Any])?.count == 5)
            let streamData = try #require(pull["stream_data"] as? String)
            try checkStreamData(streamData, roomId: roomId, streamId: room["streamId"] as? String)

            // Case-insensitive, like TikTok.
            let upper = try await client.get("/api-live/user/room/?aid=1988&uniqueId=ALICE&sourceType=54")
            #expect(((try upper.object["data"] as? [String: Any])?["user"] as? [String: Any])?["roomId"] as? String == roomId)
        }
    }

    @Test func offlineAccountsShowTheLastRoomOrNone() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            try await client.post("/_sim/accounts", json: #"{"username":"never"}"#)
            let never = try await client.get("/api-live/user/room/?aid=1988&uniqueId=never&sourceType=54").object
            let neverData = try #require(never["data"] as? [String: Any])
            #expect((neverData["user"] as? [String: Any])?["roomId"] as? String == "")
            #expect((neverData["user"] as? [String: Any])?["status"] as? Int == 4)
            #expect((neverData["liveRoom"] as? [String: Any])?["status"] as? Int == 4)

            let roomId = try await client.goLive("bob")
            #expect(try await client.delete("/_sim/lives/bob").status == .ok)
            let bob = try await client.get("/api-live/user/room/?aid=1988&uniqueId=bob&sourceType=54").object
            let bobData = try #require(bob["data"] as? [String: Any])
            #expect((bobData["user"] as? [String: Any])?["roomId"] as? String == roomId)
            #expect((bobData["user"] as? [String: Any])?["status"] as? Int == 4)
            #expect((bobData["liveRoom"] as? [String: Any])?["status"] as? Int == 4)
            #expect((bobData["liveRoom"] as? [String: Any])?["streamData"] == nil)
        }
    }

    @Test func unknownUserAndBadParameters() async throws {
        try await makeSimulator().makeApplication().test(.router) { client in
            let unknown = try await client.get("/api-live/user/room/?aid=1988&uniqueId=nobody&sourceType=54")
            #expect(unknown.status == .ok)
            #expect(unknown.text == #"{"data":null,"message":"user_not_found","extra":{},"statusCode":19881007}"#)
            for uri in ["/api-live/user/room/?uniqueId=nobody", "/api-live/user/room/?aid=1988", "/api-live/user/room/?aid=1988&uniqueId="] {
                let body = try await client.get(uri).object
                #expect(body["message"] as? String == "params_error")
                #expect(body["statusCode"] as? Int == 19881005)
            }
        }
    }

    @Test func checkAliveReportsKnownRoomsAsExactIntegers() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            let a = try await client.goLive("a1")
            let b = try await client.goLive("b2")
            let c = try await client.goLive("c3")
            try await client.delete("/_sim/lives/c3")
            let unknown = "7000000000000000001"
            let response = try await client.get("/webcast/room/check_alive/?aid=1988&room_ids=\(a),\(unknown),\(b),\(c)")
            #expect(response.contentType == "application/json; charset=utf-8")
            let body = try response.object
            #expect(body["status_code"] as? Int == 0)
            #expect(((body["extra"] as? [String: Any])?["now"] as? Int ?? 0) > 1_700_000_000_000)
            let data = try #require(body["data"] as? [[String: Any]])
            #expect(data.count == 3)  // the unknown id is omitted
            let alive = Dictionary(uniqueKeysWithValues: data.map { ($0["room_id_str"] as! String, $0["alive"] as! Bool) })
            #expect(alive == [a: true, b: true, c: false])
            // The numeric room_id must be the exact 19-digit integer.
            #expect(rawIntegers("room_id", in: response.text).sorted() == [a, b, c].map { Int64($0)! }.sorted())
            #expect(Int64(a)! >= 7_000_000_000_000_000_000)

            let missing = try await client.get("/webcast/room/check_alive/?aid=1988").object
            #expect(missing["status_code"] as? Int == 10011)
        }
    }

    @Test func roomInfoLiveEndedAndRestricted() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            let roomId = try await client.goLive("carol", extra: #","title":"Live du soir""#)
            let response = try await client.get("/webcast/room/info/?aid=1988&room_id=\(roomId)")
            let body = try response.object
            #expect(body["status_code"] as? Int == 0)
            let data = try #require(body["data"] as? [String: Any])
            #expect(data["status"] as? Int == 2)
            #expect(data["title"] as? String == "Live du soir")
            #expect((data["user_count"] as? Int ?? 0) > 0)
            #expect((data["owner"] as? [String: Any])?["display_id"] as? String == "carol")
            #expect(rawIntegers("id", in: response.text).contains(Int64(roomId)!))
            let streamURL = try #require(data["stream_url"] as? [String: Any])
            let flv = try #require(streamURL["flv_pull_url"] as? [String: String])
            #expect(Set(flv.keys) == ["FULL_HD1", "HD1", "SD1", "SD2"])
            #expect(flv.values.allSatisfy { $0.hasPrefix("http://localhost:0/game/stream-") && $0.contains("expire=") && $0.contains("&sign=") })
            #expect(streamURL["hls_pull_url"] is String)
            #expect(streamURL["rtmp_pull_url"] is String)
            let pull = try #require((streamURL["live_core_sdk_data"] as? [String: Any])?["pull_data"] as? [String: Any])
            #expect((pull["options"] as? [String: Any])?["qualities"] is [Any])
            try checkStreamData(try #require(pull["stream_data"] as? String), roomId: roomId, streamId: nil)
            // TikTok's encoder escapes '&' in URLs: clients must parse JSON, not grep it.
            #expect(response.text.contains(#"\u0026sign="#))

            try await client.delete("/_sim/lives/carol")
            let ended = try await client.get("/webcast/room/info/?aid=1988&room_id=\(roomId)").object
            let endedData = try #require(ended["data"] as? [String: Any])
            #expect(endedData["status"] as? Int == 4)
            #expect(endedData["stream_url"] == nil)

            let restrictedRoom = try await client.goLive("dave", restricted: true)
            let uri = "/webcast/room/info/?aid=1988&room_id=\(restrictedRoom)"
            let anonymous = try await client.get(uri, headers: [.cookie: "tt-target-idc=useast1a"]).object
            #expect(anonymous["status_code"] as? Int == 4003110)
            #expect((anonymous["data"] as? [String: Any])?["prompts"] as? String == "This LIVE is age-restricted")
            #expect(((anonymous["extra"] as? [String: Any])?["now"] as? Int ?? 0) > 0)
            let emptySession = try await client.get(uri, headers: [.cookie: "sessionid=; tt-target-idc=useast1a"]).object
            #expect(emptySession["status_code"] as? Int == 4003110)
            // A session without its data centre is refused as well.
            let withoutIDC = try await client.get(uri, headers: [.cookie: "sessionid=abc123; sid_tt=abc123"]).object
            #expect(withoutIDC["status_code"] as? Int == 4003110)
            let loggedIn = try await client.get(uri, headers: [.cookie: "tt-target-idc=useast1a; sessionid=abc123; sid_tt=abc123"]).object
            #expect(loggedIn["status_code"] as? Int == 0)
            #expect((loggedIn["data"] as? [String: Any])?["status"] as? Int == 2)

            let unknown = try await client.get("/webcast/room/info/?aid=1988&room_id=7000000000000000001").object
            #expect(unknown["status_code"] as? Int != 0)
        }
    }

    @Test func livePageEmbedsSIGIState() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            let roomId = try await client.goLive("erin")
            let page = try await client.get("/@erin/live")
            #expect(page.status == .ok)
            #expect(page.contentType == "text/html; charset=utf-8")
            let state = try sigiState(page.text)
            let user = try #require(((state["LiveRoom"] as? [String: Any])?["liveRoomUserInfo"] as? [String: Any])?["user"] as? [String: Any])
            #expect(user["roomId"] as? String == roomId)
            #expect(user["status"] as? Int == 2)

            try await client.delete("/_sim/lives/erin")
            let offline = try sigiState(try await client.get("/@erin/live").text)
            let offlineUser = ((offline["LiveRoom"] as? [String: Any])?["liveRoomUserInfo"] as? [String: Any])?["user"] as? [String: Any]
            #expect(offlineUser?["status"] as? Int == 4)

            let unknown = try sigiState(try await client.get("/@nobody/live").text)
            #expect(unknown["LiveRoom"] == nil)
        }
    }

    @Test func streamURLsAreSignedAndEndWithTheLive() async throws {
        let sim = makeSimulator()
        try await sim.makeApplication().test(.router) { client in
            _ = try await client.goLive("frank")
            let live = try #require(sim.state.currentLives().first)
            let urls = StreamURLs(signer: StreamSigner(key: testKey))
            let good = urls.url(base: "", streamId: live.streamId, quality: .ao, now: Date())
            #expect(good.hasSuffix("&only_audio=1"))

            let badSign = good.replacingOccurrences(of: "sign=", with: "sign=0")
            #expect(try await client.get(badSign).status == .forbidden)
            let noSign = "/game/stream-\(live.streamId).flv?expire=\(Int(Date().timeIntervalSince1970) + 3600)"
            #expect(try await client.get(noSign).status == .forbidden)
            let expire = Int64(Date().timeIntervalSince1970) - 10
            let expired = "/game/stream-\(live.streamId).flv?expire=\(expire)&sign=\(StreamSigner(key: testKey).sign(streamId: live.streamId, expire: expire))"
            #expect(try await client.get(expired).status == .forbidden)
            let otherKey = StreamURLs(signer: StreamSigner(key: Array("other".utf8))).url(base: "", streamId: live.streamId, quality: .origin, now: Date())
            #expect(try await client.get(otherKey).status == .forbidden)

            try await client.delete("/_sim/lives/frank")
            #expect(try await client.get(good).status == .notFound)
            let ld = urls.url(base: "", streamId: live.streamId, quality: .ld, now: Date())
            #expect(try await client.get(ld).status == .notFound)
        }
    }

    @Test func controlAPIErrors() async throws {
        let sim = makeSimulator(accounts: 3)
        try await sim.makeApplication().test(.router) { client in
            #expect(sim.state.account("sim2") != nil)
            #expect(sim.state.account("sim3") == nil)
            let created = try await client.post("/_sim/accounts", json: #"{"username":"Gina","nickname":"Gina G"}"#)
            #expect(created.status == .created)
            #expect(try created.object["username"] as? String == "gina")
            #expect(try await client.post("/_sim/accounts", json: #"{"username":"gina","restricted":true}"#).status == .ok)
            #expect(sim.state.account("gina")?.restricted == true)
            #expect(sim.state.account("gina")?.nickname == "Gina G")
            #expect(try await client.post("/_sim/accounts", json: "{").status == .badRequest)

            let unknown = try await client.post("/_sim/lives", json: #"{"username":"nobody"}"#)
            #expect(unknown.status == .notFound)
            #expect(try unknown.object["error"] is String)
            #expect(try await client.post("/_sim/lives", json: #"{"username":"sim0"}"#).status == .created)
            #expect(try await client.post("/_sim/lives", json: #"{"username":"sim0"}"#).status == .conflict)
            let badAudio = try await client.post("/_sim/lives", json: #"{"username":"sim1","audio":"/no/such/file.wav"}"#)
            #expect(badAudio.status == .unprocessableContent)
            #expect(try await client.delete("/_sim/lives/sim1").status == .notFound)

            let lives = try await client.get("/_sim/lives").array
            #expect(lives.count == 1)
            #expect(lives.first?["username"] as? String == "sim0")
            #expect((lives.first?["room_id"] as? String)?.count == 19)
            #expect(lives.first?["stream_clients"] as? Int == 0)
        }
    }

    @Test func statsCountTikTokRequestsOnly() async throws {
        let sim = makeSimulator(accounts: 1)
        try await sim.makeApplication().test(.router) { client in
            for _ in 0..<3 { _ = try await client.get("/api-live/user/room/?aid=1988&uniqueId=sim0&sourceType=54") }
            _ = try await client.get("/webcast/room/check_alive/?aid=1988&room_ids=1")
            _ = try await client.get("/@sim0/live")
            let stats = try await client.get("/_sim/stats").object
            let requests = try #require(stats["requests"] as? [String: Int])
            #expect(requests == ["/api-live/user/room/": 3, "/webcast/room/check_alive/": 1, "/@sim0/live": 1])
            let maxRPS = try #require(stats["max_rps"] as? Int)
            #expect((1...5).contains(maxRPS))
            #expect(stats["lives"] as? Int == 0)
            #expect(stats["stream_clients"] as? Int == 0)
            #expect(stats["blocked"] as? Int == 0)

            #expect(try await client.delete("/_sim/stats").status == .ok)
            let reset = try await client.get("/_sim/stats").object
            #expect((reset["requests"] as? [String: Int])?.isEmpty == true)
            #expect(reset["max_rps"] as? Int == 0)
        }
    }
}

/// `stream_data` is a JSON string: parse it again and check every quality.
func checkStreamData(_ text: String, roomId: String, streamId: String?) throws {
    let inner = try #require(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    #expect((inner["common"] as? [String: Any])?["room_id"] as? String == roomId)
    let data = try #require(inner["data"] as? [String: Any])
    for quality in ["origin", "hd", "sd", "ld", "ao"] {
        let main = try #require((data[quality] as? [String: Any])?["main"] as? [String: Any], "\(quality)")
        let flv = try #require(main["flv"] as? String)
        #expect(flv.contains("/game/stream-") && flv.contains("?expire=") && flv.contains("&sign="))
        if let streamId { #expect(flv.contains("stream-\(streamId)")) }
        #expect(main["hls"] is String)
        let params = try #require(main["sdk_params"] as? String)
        let parsed = try #require(JSONSerialization.jsonObject(with: Data(params.utf8)) as? [String: Any])
        #expect(parsed["vbitrate"] is Int)
        if quality == "ao" {
            #expect(flv.hasSuffix("&only_audio=1"))
            #expect(parsed["stream_suffix"] as? String == "ao")
            #expect(parsed["vbitrate"] as? Int == 0)
        }
    }
}

/// The JSON inside `<script id="SIGI_STATE" type="application/json">`.
func sigiState(_ html: String) throws -> [String: Any] {
    let open = try #require(html.range(of: #"<script id="SIGI_STATE" type="application/json">"#))
    let close = try #require(html.range(of: "</script>", range: open.upperBound..<html.endIndex))
    return try #require(JSONSerialization.jsonObject(with: Data(html[open.upperBound..<close.lowerBound].utf8)) as? [String: Any])
}
