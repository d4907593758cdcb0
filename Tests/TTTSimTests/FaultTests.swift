import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TTTDomain
@testable import TTTSim

@Suite struct FaultTests {
    let userRoom = "/api-live/user/room/?aid=1988&uniqueId=sim0&sourceType=54"

    @Test func httpStatusWithRetryAfterAndPathFilter() async throws {
        try await makeSimulator(accounts: 1).makeApplication().test(.router) { client in
            let added = try await client.post("/_sim/faults", json: #"{"kind":"http_status","status":429,"paths":["/api-live/"]}"#)
            #expect(added.status == .created)
            #expect(try added.object["id"] as? Int != nil)
            let limited = try await client.get(userRoom)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[HTTPFields.Element.Name("Retry-After")!] == "5")
            #expect(try limited.object["statusCode"] as? Int == 429)
            // Not under the listed prefix: answered normally.
            #expect(try await client.get("/webcast/room/check_alive/?aid=1988&room_ids=1").object["status_code"] as? Int == 0)
            // The control API is never faulted.
            #expect(try await client.get("/_sim/stats").status == .ok)

            #expect(try await client.delete("/_sim/faults").status == .ok)
            try await client.post("/_sim/faults", json: #"{"kind":"http_status","status":403,"max":1}"#)
            #expect(try await client.get(userRoom).status == .forbidden)
            #expect(try await client.get(userRoom).status == .ok)  // max 1: spent
        }
    }

    @Test("a 3xx fault redirects to the request's own URL, as a WAF's bounce; other statuses carry no Location")
    func redirectLoop() async throws {
        try await makeSimulator(accounts: 1).makeApplication().test(.router) { client in
            try await client.post("/_sim/faults", json: #"{"kind":"http_status","status":302}"#)
            let bounced = try await client.get(userRoom)
            #expect(bounced.status == .found)
            #expect(bounced.headers[.location] == userRoom)
            try await client.delete("/_sim/faults")
            try await client.post("/_sim/faults", json: #"{"kind":"http_status","status":503}"#)
            #expect(try await client.get(userRoom).headers[.location] == nil)
        }
    }

    @Test func htmlChallengeAndEmptyBody() async throws {
        try await makeSimulator(accounts: 1).makeApplication().test(.router) { client in
            try await client.post("/_sim/faults", json: #"{"kind":"html_waf"}"#)
            let challenge = try await client.get(userRoom)
            #expect(challenge.status == .ok)
            #expect(challenge.contentType == "text/html; charset=utf-8")
            #expect(challenge.text.contains("Please wait..."))
            #expect(challenge.text.contains("SlardarWAF"))
            #expect(challenge.text.contains(#"<p id="wci" class="_wafchallengeid">"#))

            try await client.delete("/_sim/faults")
            try await client.post("/_sim/faults", json: #"{"kind":"empty_200"}"#)
            let empty = try await client.get("/webcast/room/check_alive/?aid=1988&room_ids=1")
            #expect(empty.status == .ok)
            #expect(empty.body.readableBytes == 0)
            #expect(try await client.get("/_sim/stats").object["blocked"] as? Int == 2)
        }
    }

    @Test func delayThenNormalAnswer() async throws {
        try await makeSimulator(accounts: 1).makeApplication().test(.router) { client in
            try await client.post("/_sim/faults", json: #"{"kind":"delay","ms":300}"#)
            let start = ContinuousClock.now
            let response = try await client.get(userRoom)
            #expect(start.duration(to: .now) >= .milliseconds(300))
            #expect(try response.object["statusCode"] as? Int == 0)
        }
    }

    @Test func notFoundFlapAnswersUserNotFoundForExistingUsers() async throws {
        try await makeSimulator(accounts: 1).makeApplication().test(.router) { client in
            try await client.post("/_sim/faults", json: #"{"kind":"not_found_flap","probability":1}"#)
            #expect(try await client.get(userRoom).object["statusCode"] as? Int == 19881007)
            // Only api-live/user/room flaps.
            #expect(try sigiState(try await client.get("/@sim0/live").text)["LiveRoom"] != nil)
            try await client.delete("/_sim/faults")
            try await client.post("/_sim/faults", json: #"{"kind":"not_found_flap","probability":0}"#)
            #expect(try await client.get(userRoom).object["statusCode"] as? Int == 0)
        }
    }

    @Test func rateWAFBlocksPastMaxAndIgnoresWebcast() async throws {
        try await makeSimulator(accounts: 1).makeApplication().test(.router) { client in
            let fault = try await client.post("/_sim/faults", json: #"{"kind":"rate_waf","max":3,"window_s":60,"penalty_s":300}"#)
            #expect(fault.status == .created)
            for _ in 0..<3 {
                #expect(try await client.get(userRoom).object["statusCode"] as? Int == 0)
                // check_alive and room info are neither counted nor blocked.
                #expect(try await client.get("/webcast/room/check_alive/?aid=1988&room_ids=1").object["status_code"] as? Int == 0)
                #expect(try await client.get("/webcast/room/info/?aid=1988&room_id=1").contentType == "application/json; charset=utf-8")
            }
            let blocked = try await client.get(userRoom)
            #expect(blocked.contentType == "text/html; charset=utf-8")
            #expect(blocked.text.contains("_wafchallengeid"))
            // Every api-live and HTML request is blocked for the penalty, webcast is not.
            #expect(try await client.get("/@sim0/live").text.contains("SlardarWAF"))
            #expect(try await client.get(userRoom).text.contains("SlardarWAF"))
            #expect(try await client.get("/webcast/room/check_alive/?aid=1988&room_ids=1").object["status_code"] as? Int == 0)
            let faults = try await client.get("/_sim/faults").array
            #expect(faults.first?["blocking"] as? Bool == true)
        }
    }

    @Test func rateWAFPenaltyAndWindowInTime() throws {
        let board = FaultBoard(random: SeededRandom(seed: 1))
        let t0 = ContinuousClock.now
        _ = try board.add(FaultSpec(kind: .rateWAF, max: 2, window_s: 10, penalty_s: 60), now: t0)
        func decide(_ endpoint: TikTokEndpoint, at seconds: Double) -> FaultAction {
            let path = endpoint == .livePage ? "/@sim0/live" : "/api-live/user/room/"
            return board.decide(endpoint: endpoint, path: path, now: t0 + .milliseconds(Int64(seconds * 1000))).action
        }
        #expect(decide(.userRoom, at: 0) == .none)
        #expect(decide(.userRoom, at: 6) == .none)
        #expect(decide(.userRoom, at: 11) == .none)  // the request at 0 s left the 10 s window
        #expect(decide(.checkAlive, at: 11.5) == .none)
        #expect(decide(.livePage, at: 12) == .challenge)  // 3 in the window: blocked for 60 s
        #expect(decide(.checkAlive, at: 13) == .none)
        #expect(decide(.userRoom, at: 71) == .challenge)
        #expect(decide(.userRoom, at: 200) == .none)  // penalty over, window empty
    }

    @Test func faultLifetimeAndProbability() throws {
        let board = FaultBoard(random: SeededRandom(seed: 7))
        let t0 = ContinuousClock.now
        _ = try board.add(FaultSpec(kind: .empty200, probability: 0.5, duration_s: 5), now: t0)
        let hits = (0..<1000).filter { _ in
            board.decide(endpoint: .checkAlive, path: "/webcast/room/check_alive/", now: t0 + .seconds(1)).action == .empty
        }.count
        #expect((400...600).contains(hits))
        #expect(board.decide(endpoint: .checkAlive, path: "/webcast/room/check_alive/", now: t0 + .seconds(6)).action == .none)
        #expect(board.list(now: t0 + .seconds(6)).isEmpty)
        #expect(throws: SimError.self) { try board.add(FaultSpec(kind: .delay, probability: 2)) }
    }

    @Test func resetClosesTheConnectionWithoutAResponse() async throws {
        try await makeSimulator(accounts: 1).makeApplication().test(.live) { client in
            try await client.post("/_sim/faults", json: #"{"kind":"reset","paths":["/api-live/"]}"#)
            await #expect(throws: (any Error).self) {
                _ = try await client.get(userRoom)
            }
        }
        // The same through curl, which names the failure.
        try await makeSimulator(accounts: 1).makeApplication().test(.live) { client in
            try await client.post("/_sim/faults", json: #"{"kind":"reset"}"#)
            let port = try #require(client.port)
            let result = try await run(["curl", "-sS", "-o", "/dev/null", "http://localhost:\(port)\(userRoom)"])
            #expect(result.status != 0)
            #expect(result.stderr.contains("reset") || result.stderr.contains("Empty reply"), "\(result.stderr)")
        }
    }
}
