import Foundation

/// TikTok's answer bodies (TIKTOK.md), as pure functions of the state. `base` is the address the
/// client used to reach tttsim, so stream URLs point back at it.
struct TikTokAnswers {
    let base: String
    let urls: StreamURLs
    let now: Date

    var nowMs: Int64 { Int64(now.timeIntervalSince1970 * 1000) }

    // MARK: api-live/user/room

    static let userNotFound: JSONValue = ["data": nil, "message": "user_not_found", "extra": [:], "statusCode": 19881007]
    static let paramsError: JSONValue = ["data": nil, "message": "params_error", "extra": [:], "statusCode": 19881005]

    /// An age-restricted live shows as live, but its stream data is only given to a logged-in
    /// session (tttd then asks room/info, which answers 4003110 without one). *(uncertain: no
    /// public tool documents what api-live hides; this is the conservative reading.)*
    func userRoom(_ account: Account, _ live: Live?, withSession: Bool = false) -> JSONValue {
        let hideStreams = (account.restricted && !withSession) || live?.paused == true
        return ["data": ["user": user(account, live), "liveRoom": liveRoom(live, withStreams: !hideStreams)],
                "extra": [:], "message": "", "statusCode": 0]
    }

    /// Status 2 live, 3 paused, 4 offline; `roomId` is the current room, else the last one, else "".
    private func user(_ account: Account, _ live: Live?) -> JSONValue {
        let roomId = live?.roomId ?? account.lastRoomId
        return [
            "avatarThumb": .string("https://p16-sign-va.tiktokcdn.com/tos-maliva-avt-0068/\(account.userId)~c5_100x100.jpeg"),
            "id": .string(String(account.userId)),
            "nickname": .string(account.nickname),
            "roomId": .string(roomId.map { String($0) } ?? ""),
            "secUid": .string(account.secUid),
            "status": .int(Int64(live?.status ?? 4)),
            "uniqueId": .string(account.username),
        ]
    }

    private func liveRoom(_ live: Live?, withStreams: Bool) -> JSONValue {
        guard let live else {
            return ["coverUrl": "", "title": "", "startTime": 0, "status": 4, "streamId": "",
                    "liveRoomStats": ["userCount": 0, "enterCount": 0]]
        }
        var room: [(String, JSONValue)] = [
            ("coverUrl", ""),
            ("title", .string(live.title)),
            ("startTime", .int(Int64(live.startedAt.timeIntervalSince1970))),
            ("status", .int(Int64(live.status))),
            ("streamId", .string(String(live.streamId))),
            ("liveRoomStats", ["userCount": .int(Int64(live.viewers)), "enterCount": .int(Int64(live.viewers * 3))]),
        ]
        if withStreams { room.append(("streamData", ["pull_data": pullData(live)])) }
        return .object(room)
    }

    // MARK: webcast/room/check_alive

    static func paramsError10011(nowMs: Int64) -> JSONValue {
        ["data": ["message": "Request params error", "prompts": "Request params error"],
         "extra": ["now": .int(nowMs)], "status_code": 10011]
    }

    /// Known rooms only (unknown ids are omitted), alive true/false.
    func checkAlive(_ rooms: [Live]) -> JSONValue {
        let data: [JSONValue] = rooms.map {
            ["alive": .bool($0.isLive), "room_id": .int($0.roomId), "room_id_str": .string(String($0.roomId))]
        }
        return ["data": .array(data), "extra": ["now": .int(nowMs)], "status_code": 0]
    }

    // MARK: webcast/room/info

    func ageRestricted() -> JSONValue {
        ["data": ["message": "", "prompts": "This LIVE is age-restricted"], "extra": ["now": .int(nowMs)], "status_code": 4003110]
    }

    /// The same code, given to a logged-in session: TikTok throttling, or the session expired
    /// (the `room_info_refused` fault).
    static func refused(nowMs: Int64) -> JSONValue {
        ["data": ["message": "", "prompts": "Please try again later"], "extra": ["now": .int(nowMs)], "status_code": 4003110]
    }

    /// Not documented for TikTok; tttsim answers an unknown room with a non-zero code.
    func roomNotFound() -> JSONValue {
        ["data": ["message": "room not found", "prompts": "This LIVE has ended"], "extra": ["now": .int(nowMs)], "status_code": 30003]
    }

    func roomInfo(_ account: Account, _ live: Live) -> JSONValue {
        var data: [(String, JSONValue)] = [
            ("create_time", .int(Int64(live.startedAt.timeIntervalSince1970))),
            ("id", .int(live.roomId)),
            ("id_str", .string(String(live.roomId))),
            ("owner", [
                "display_id": .string(account.username),
                "id": .int(account.userId),
                "id_str": .string(String(account.userId)),
                "nickname": .string(account.nickname),
                "sec_uid": .string(account.secUid),
            ]),
            ("owner_user_id", .int(account.userId)),
            ("status", .int(Int64(live.status))),
            ("title", .string(live.title)),
            ("user_count", .int(live.isLive ? Int64(live.viewers) : 0)),
        ]
        if let ended = live.endedAt {
            data.append(("finish_time", .int(Int64(ended.timeIntervalSince1970))))
        } else {
            data.append(("stream_url", streamURL(live)))
        }
        return ["data": .object(data), "extra": ["now": .int(nowMs)], "status_code": 0]
    }

    private func streamURL(_ live: Live) -> JSONValue {
        func url(_ quality: StreamQuality) -> JSONValue {
            .string(urls.url(base: base, streamId: live.streamId, quality: quality, now: now))
        }
        let host = base.replacingOccurrences(of: "http://", with: "")
        return [
            "candidate_resolution": ["SD1", "SD2", "HD1", "FULL_HD1"],
            "default_resolution": "HD1",
            // Video qualities all serve the same audio-only FLV: tttsim has no video.
            "flv_pull_url": ["FULL_HD1": url(.origin), "HD1": url(.hd), "SD1": url(.sd), "SD2": url(.ld)],
            "hls_pull_url": "",
            "id": .int(live.streamId),
            "id_str": .string(String(live.streamId)),
            "live_core_sdk_data": ["pull_data": pullData(live)],
            // Not served (tttd does not use RTMP); present because TikTok's answer has it.
            "rtmp_pull_url": .string("rtmp://\(host)/game/stream-\(live.streamId)"),
        ]
    }

    // MARK: pull_data and stream_data

    private func pullData(_ live: Live) -> JSONValue {
        ["options": ["qualities": Self.qualities], "stream_data": .string(streamData(live))]
    }

    static let qualities: JSONValue = [
        quality("Original", "origin", "1920x1080", 10, 4_000_000),
        quality("HD", "hd", "1280x720", 8, 2_000_000),
        quality("SD", "sd", "854x480", 6, 1_000_000),
        quality("LD", "ld", "640x360", 4, 500_000),
        quality("Audio_Only", "ao", "", 0, 0),
    ]

    private static func quality(_ name: String, _ key: String, _ resolution: String, _ level: Int64, _ bitrate: Int64) -> JSONValue {
        ["additional_info": "", "disable": false, "fps": 0, "icon_type": 0, "level": .int(level), "name": .string(name),
         "resolution": .string(resolution), "sdk_key": .string(key), "v_bit_rate": .int(bitrate), "v_codec": bitrate == 0 ? "" : "h264"]
    }

    /// The `stream_data` JSON *string* (clients parse it a second time).
    func streamData(_ live: Live) -> String {
        func entry(_ quality: StreamQuality, _ sdkParams: JSONValue) -> (String, JSONValue) {
            (quality.rawValue, ["main": [
                "flv": .string(urls.url(base: base, streamId: live.streamId, quality: quality, now: now)),
                "hls": "",
                "sdk_params": .string(sdkParams.text),
            ]])
        }
        func video(_ bitrate: Int64, _ resolution: String) -> JSONValue {
            ["vbitrate": .int(bitrate), "resolution": .string(resolution), "gop": 2, "vcodec": "h264"]
        }
        let value: JSONValue = [
            "common": ["room_id": .string(String(live.roomId)), "session_id": .string("\(live.streamId)-\(live.roomId)")],
            "data": .object([
                entry(.origin, video(4_000_000, "1920x1080")),
                entry(.hd, video(2_000_000, "1280x720")),
                entry(.sd, video(1_000_000, "854x480")),
                entry(.ld, video(500_000, "640x360")),
                entry(.ao, ["vbitrate": 0, "stream_suffix": "ao"]),
            ]),
        ]
        return value.text
    }

    // MARK: HTML

    /// `/@user/live`: SIGI_STATE with `LiveRoom.liveRoomUserInfo` for a known account, without
    /// `LiveRoom` for an unknown one.
    func livePage(handle: String, _ entry: (Account, Live?)?) -> String {
        var state: [(String, JSONValue)] = [
            ("AppContext", ["appContext": ["language": "en", "region": "US", "user": [:]]]),
            ("SEO", ["metaParams": ["title": .string("\(handle) LIVE | TikTok")]]),
        ]
        if let (account, live) = entry {
            state.append(("LiveRoom", [
                "liveRoomUserInfo": ["user": user(account, live), "liveRoom": liveRoom(live, withStreams: !account.restricted && live?.paused != true)],
                "loadingState": ["getRecommendLive": 1, "getUserInfo": 1],
            ]))
        }
        let title = entry == nil ? "Couldn't find this account | TikTok" : "\(handle) is LIVE - TikTok LIVE"
        return """
            <!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>\(Self.htmlEscape(title))</title>\
            <meta name="viewport" content="width=device-width, initial-scale=1"></head><body><div id="app"></div>\
            <script id="SIGI_STATE" type="application/json">\(JSONValue.object(state).text)</script>\
            <script src="https://lf16-tiktok-web.tiktokcdn-us.com/obj/tiktok-web-tx/tiktok/webapp/main/webapp-desktop/live.js" async></script>\
            </body></html>
            """
    }

    /// The WAF challenge page TikTok serves with HTTP 200 where JSON was expected.
    static func challengePage(id: String) -> String {
        """
        <!DOCTYPE html><html><head><meta charset="UTF-8"><meta name="viewport" content="width=device-width, initial-scale=1">\
        <title>Please wait...</title></head><body><div class="waf-container"><p>Please wait...</p>\
        <p id="wci" class="_wafchallengeid">\(id)</p></div>\
        <script src="https://sf16-website-login.neutral.ttwstatic.com/obj/tiktok_web_login_static/slardar/sdk-web/SlardarWAF.js" crossorigin="anonymous"></script>\
        <script>window._wafchallengeid="\(id)";window.SlardarWAF && window.SlardarWAF.init({bid:"tiktok_waf"});</script>\
        </body></html>
        """
    }

    private static func htmlEscape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
