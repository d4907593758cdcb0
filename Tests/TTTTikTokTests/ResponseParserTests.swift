import Foundation
import Testing
@testable import TTTTikTok

@Suite("TikTok response parsing")
struct ResponseParserTests {
    func answer(_ body: String, status: Int = 200, type: String = "application/json", retryAfter: String? = nil) -> ResponseParser.HTTPAnswer {
        .init(status: status, contentType: type, retryAfter: retryAfter, body: Data(body.utf8))
    }

    static let streamData = #"{"common":{"room_id":"7684008970436823815"},"data":{"origin":{"main":{"flv":"https://pull/origin.flv","hls":"","sdk_params":"{}"}},"ld":{"main":{"flv":"https://pull/ld.flv"}},"ao":{"main":{"flv":"https://pull/stream.flv?only_audio=1","hls":"","sdk_params":"{\"vbitrate\":0}"}}}}"#

    @Test("a live account: room id kept exactly, audio-only stream preferred")
    func live() throws {
        let escaped = try String(decoding: JSONEncoder().encode(Self.streamData), as: UTF8.self)
        let body = #"{"data":{"user":{"id":"6779","uniqueId":"alice","nickname":"Alice","roomId":"7684008970436823815","status":2},"liveRoom":{"status":2,"title":"Bonsoir","startTime":1789072789,"streamId":"1272339927704012379","liveRoomStats":{"userCount":12},"streamData":{"pull_data":{"options":{"qualities":[]},"stream_data":"# + escaped + #"}}}},"extra":{},"message":"","statusCode":0}"#
        guard case .live(let room) = ResponseParser.accountLookup(answer(body)) else {
            Issue.record("not live")
            return
        }
        #expect(room.roomID == "7684008970436823815")
        #expect(room.title == "Bonsoir")
        #expect(room.viewers == 12)
        #expect(room.streams.best == "https://pull/stream.flv?only_audio=1")
        #expect(room.streams.flv.first == "https://pull/ld.flv")
    }

    @Test("offline, never live and not found")
    func offline() {
        let offline = #"{"data":{"user":{"roomId":"7684008970436823815","status":4},"liveRoom":{"status":4}},"extra":{},"message":"","statusCode":0}"#
        #expect(ResponseParser.accountLookup(answer(offline)) == .offline(lastRoomID: "7684008970436823815"))
        let never = #"{"data":{"user":{"roomId":"","status":4}},"statusCode":0}"#
        #expect(ResponseParser.accountLookup(answer(never)) == .offline(lastRoomID: nil))
        let missing = #"{"data":null,"message":"user_not_found","extra":{},"statusCode":19881007}"#
        #expect(ResponseParser.accountLookup(answer(missing)) == .notFound)
    }

    @Test("every block signal and malformed answer is unknown, never offline")
    func blocks() {
        let waf = "<html><head><title>Please wait...</title><script src=\"SlardarWAF\"></script></head><body><p id=\"wci\" class=\"_wafchallengeid\"></p></body></html>"
        #expect(ResponseParser.accountLookup(answer(waf, type: "text/html")).block == .challengePage)
        #expect(ResponseParser.accountLookup(answer("")).block == .emptyBody)
        #expect(ResponseParser.accountLookup(answer("{}", status: 403)).block == .forbidden)
        #expect(ResponseParser.accountLookup(answer("{}", status: 429, retryAfter: "7")).block == .tooManyRequests(retryAfter: .seconds(7)))
        for body in ["{not json", #"{"statusCode":0}"#, #"{"data":{"user":{"status":2}},"statusCode":0}"#, #"{"message":"params_error","statusCode":19881005}"#] {
            guard case .unknown = ResponseParser.accountLookup(answer(body)) else {
                Issue.record("\(body) was not unknown")
                continue
            }
        }
        guard case .unknown = ResponseParser.accountLookup(answer("oops", status: 502)) else {
            Issue.record("502 was not unknown")
            return
        }
    }

    @Test("check_alive: matched by room_id_str, never by position; omitted ids stay unknown")
    func checkAlive() {
        let body = #"{"data":[{"alive":false,"room_id":7684008970436823816,"room_id_str":"7684008970436823816"},{"alive":true,"room_id":7684008970436823815,"room_id_str":"7684008970436823815"}],"extra":{"now":1789625067764},"status_code":0}"#
        #expect(ResponseParser.aliveCheck(answer(body)) == .answered(["7684008970436823815": true, "7684008970436823816": false]))
    }

    @Test("room info: restricted, ended, live with stream URLs")
    func roomInfo() throws {
        let restricted = #"{"data":{"prompts":"This LIVE is age-restricted"},"extra":{"now":1},"status_code":4003110}"#
        #expect(ResponseParser.roomInfo(answer(restricted), roomID: "1") == .restricted)
        #expect(ResponseParser.roomInfo(answer(#"{"data":{"status":4},"status_code":0}"#), roomID: "1") == .ended)
        let escaped = try String(decoding: JSONEncoder().encode(Self.streamData), as: UTF8.self)
        let live = #"{"data":{"status":2,"title":"T","user_count":3,"stream_url":{"flv_pull_url":{"SD2":"https://pull/sd2.flv"},"live_core_sdk_data":{"pull_data":{"stream_data":"# + escaped + #"}}}},"status_code":0}"#
        guard case .live(let room) = ResponseParser.roomInfo(answer(live), roomID: "1") else {
            Issue.record("not live")
            return
        }
        #expect(room.streams.audioOnly == "https://pull/stream.flv?only_audio=1")
        #expect(room.streams.flv.contains("https://pull/sd2.flv"))
    }

    @Test("an HTML content type is a block page whatever the body and the case; JSON types are not")
    func htmlContentType() {
        for type in ["text/html", "text/HTML; charset=utf-8", "Text/Html", "application/xhtml+xml", "text/hhtml"] {
            #expect(ResponseParser.isHTML(type), "\(type)")
            #expect(ResponseParser.accountLookup(answer(#"{"statusCode":0}"#, type: type)).block == .challengePage, "\(type)")
        }
        for type in ["application/json", "application/json; charset=utf-8", "text/htm", "text/plain", "", "h", "htmx"] {
            #expect(!ResponseParser.isHTML(type), "\(type)")
        }
    }

    @Test("a bare session id becomes TikTok's three cookies")
    func sessionCookies() {
        #expect(HTTPTikTokClient.sessionCookies("abc\n") == "sessionid=abc; sessionid_ss=abc; sid_tt=abc")
        #expect(HTTPTikTokClient.sessionCookies("sessionid=x; sid_tt=x") == "sessionid=x; sid_tt=x")
    }

    @Test("a paused live (status 3) is the same live without streams; room info's 3 is unknown, never ended")
    func paused() throws {
        let paused = #"{"data":{"user":{"roomId":"7684008970436823815","status":3},"liveRoom":{"status":3,"title":"pause"}},"extra":{},"message":"","statusCode":0}"#
        guard case .live(let room) = ResponseParser.accountLookup(answer(paused)) else {
            Issue.record("not live: \(ResponseParser.accountLookup(answer(paused)))")
            return
        }
        #expect(room.roomID == "7684008970436823815")
        #expect(room.title == "pause")
        #expect(room.streams.best == nil)
        // Paused without a room id: nothing to keep following.
        let noRoom = #"{"data":{"user":{"roomId":"","status":3},"liveRoom":{"status":3}},"extra":{},"message":"","statusCode":0}"#
        guard case .unknown = ResponseParser.accountLookup(answer(noRoom)) else {
            Issue.record("not unknown: \(ResponseParser.accountLookup(answer(noRoom)))")
            return
        }
        let info = #"{"data":{"status":3,"title":"pause"},"extra":{"now":1789625067764},"status_code":0}"#
        guard case .unknown = ResponseParser.roomInfo(answer(info), roomID: "7684008970436823815") else {
            Issue.record("room info's 3 is not unknown")
            return
        }
    }

    @Test("user status 2 with its room but liveRoom status 4: unknown, not offline; offline is both statuses 4")
    func disagreeingStatuses() {
        // The answer may be caught mid-change: counted as offline, it could end a live that goes on.
        let disagreeing = #"{"data":{"user":{"roomId":"7684008970436823815","status":2},"liveRoom":{"status":4}},"extra":{},"message":"","statusCode":0}"#
        let lookup = ResponseParser.accountLookup(answer(disagreeing))
        guard case .unknown(_, let block) = lookup else {
            Issue.record("not unknown: \(lookup)")
            return
        }
        #expect(block == nil, "not a block signal: nothing to back off from")
        let bothOffline = #"{"data":{"user":{"roomId":"7684008970436823815","status":4},"liveRoom":{"status":4}},"extra":{},"message":"","statusCode":0}"#
        #expect(ResponseParser.accountLookup(answer(bothOffline)) == .offline(lastRoomID: "7684008970436823815"))
        // A user without a status says nothing against the room's 4.
        let userWithoutStatus = #"{"data":{"user":{"roomId":"7684008970436823815"},"liveRoom":{"status":4}},"extra":{},"message":"","statusCode":0}"#
        #expect(ResponseParser.accountLookup(answer(userWithoutStatus)) == .offline(lastRoomID: "7684008970436823815"))
    }

    @Test("a room id that is not a number is unknown, live or not; TikTok's message is cut to one short line")
    func malformedRoomIDAndLongMessage() {
        for (id, status) in [("1,2", 2), ("1&room_id=9", 2), ("76840089704368238l5", 4)] {
            let body = #"{"data":{"user":{"roomId":"\#(id)","status":\#(status)},"liveRoom":{"status":\#(status)}},"extra":{},"message":"","statusCode":0}"#
            guard case .unknown(let reason, nil) = ResponseParser.accountLookup(answer(body)) else {
                Issue.record("room id \(id) was taken: \(ResponseParser.accountLookup(answer(body)))")
                continue
            }
            #expect(reason.contains("not a number"), "\(reason)")
        }
        let long = String(repeating: "blocked\\n", count: 200)
        let refused = #"{"data":null,"message":"\#(long)","extra":{},"statusCode":10000}"#
        guard case .unknown(let reason, _) = ResponseParser.accountLookup(answer(refused)) else {
            Issue.record("not unknown")
            return
        }
        #expect(reason.count < 260 && !reason.contains("\n"), "\(reason.count) characters: \(reason.prefix(80))")
    }

    @Test("room info's 4003110: a restricted room without a session, TikTok refusing (a block signal) with one")
    func refusedWithSession() {
        let refused = #"{"data":{"prompts":"This LIVE is age-restricted"},"extra":{"now":1},"status_code":4003110}"#
        #expect(ResponseParser.roomInfo(answer(refused), roomID: "1", sessionSent: false) == .restricted)
        guard case .unknown(let reason, .roomInfoRefused?) = ResponseParser.roomInfo(answer(refused), roomID: "1", sessionSent: true) else {
            Issue.record("not a block: \(ResponseParser.roomInfo(answer(refused), roomID: "1", sessionSent: true))")
            return
        }
        #expect(reason.contains("4003110") && reason.contains("session"), "\(reason)")
    }
}
