import Foundation
import TTTHTTPReplies

/// Reads TikTok's JSON answers. Shapes follow TIKTOK.md; anything else is `unknown` with a reason
/// short enough to log. Room ids are read as strings: they are 19-digit integers that a Double
/// would corrupt.
public enum ResponseParser {
    public struct HTTPAnswer: Sendable {
        public var status: Int
        public var contentType: String?
        public var retryAfter: String?
        public var body: Data

        public init(status: Int, contentType: String?, retryAfter: String?, body: Data) {
            self.status = status
            self.contentType = contentType
            self.retryAfter = retryAfter
            self.body = body
        }
    }

    /// The block signals and transport failures every endpoint shares; nil when the body should be JSON to parse.
    static func refusal(_ answer: HTTPAnswer) -> (reason: String, block: BlockSignal?)? {
        switch answer.status {
        case 429:
            return ("HTTP 429", .tooManyRequests(retryAfter: answer.retryAfter.flatMap { RetryAfter.parse($0) }))
        case 403:
            return ("HTTP 403", .forbidden)
        case 200..<300:
            break
        default:
            return ("HTTP \(answer.status)", nil)
        }
        let trimmed = answer.body.drop { $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }
        if trimmed.isEmpty { return ("empty answer", .emptyBody) }
        if trimmed.first == UInt8(ascii: "<") || answer.contentType.map(isHTML) == true {
            let text = String(decoding: answer.body.prefix(4096), as: UTF8.self)
            if text.contains("_wafchallengeid") || text.contains("SlardarWAF") || text.contains("Please wait") {
                return ("challenge page", .challengePage)
            }
            return ("HTML instead of JSON", .challengePage)
        }
        return nil
    }

    /// `text/html; charset=utf-8` and the like, in any case. On bytes: Foundation's `contains`,
    /// which `String` gets on Linux, cost 3 % of a check's CPU on this one header, and the standard
    /// library's generic `contains` on the UTF-8 view measured 12 times slower than that.
    static func isHTML(_ contentType: String) -> Bool {
        // "html" has no border (no proper prefix that is also a suffix): after a mismatch the
        // search restarts at the current byte.
        var matched = 0
        for byte in contentType.utf8 {
            let lower = byte | 0x20
            if lower == html[matched] {
                matched += 1
                if matched == html.count { return true }
            } else {
                matched = lower == html[0] ? 1 : 0
            }
        }
        return false
    }

    private static let html = Array("html".utf8)

    // MARK: api-live/user/room

    /// The fields of api-live/user/room that tttd reads, from one pass of `JSONScanner` (this
    /// answer is read on every check).
    struct UserRoomEnvelope {
        struct User {
            var roomId: String?
            var status: Int?
        }
        struct LiveRoom {
            var status: Int?
            var title: String?
            var startTime: Int?
            var userCount: Int?
            var streamData: String?
        }
        var user: User?
        var liveRoom: LiveRoom?
        var message: String?
        var statusCode: Int?

        init(scanning body: Data) throws {
            var user: User?
            var liveRoom: LiveRoom?
            var message: String?
            var statusCode: Int?
            try JSONScanner.scan(body) { json in
                try json.object { json, key in
                    switch key {
                    case "data":
                        _ = try json.nullableObject { json, key in
                            switch key {
                            case "user": user = try Self.user(&json)
                            case "liveRoom": liveRoom = try Self.liveRoom(&json)
                            default: try json.skip()
                            }
                        }
                    case "message": message = try json.string()
                    case "statusCode": statusCode = try json.int()
                    default: try json.skip()
                    }
                }
            }
            self.user = user
            self.liveRoom = liveRoom
            self.message = message
            self.statusCode = statusCode
        }

        private static func user(_ json: inout JSONScanner) throws -> User? {
            var user = User()
            guard try json.nullableObject({ json, key in
                switch key {
                case "roomId": user.roomId = try json.string()
                case "status": user.status = try json.int()
                default: try json.skip()
                }
            }) else { return nil }
            return user
        }

        private static func liveRoom(_ json: inout JSONScanner) throws -> LiveRoom? {
            var room = LiveRoom()
            guard try json.nullableObject({ json, key in
                switch key {
                case "status": room.status = try json.int()
                case "title": room.title = try json.string()
                case "startTime": room.startTime = try json.int()
                case "liveRoomStats":
                    _ = try json.nullableObject { json, key in
                        if key == "userCount" { room.userCount = try json.int() } else { try json.skip() }
                    }
                case "streamData":
                    _ = try json.nullableObject { json, key in
                        guard key == "pull_data" else { return try json.skip() }
                        _ = try json.nullableObject { json, key in
                            if key == "stream_data" { room.streamData = try json.string() } else { try json.skip() }
                        }
                    }
                default: try json.skip()
                }
            }) else { return nil }
            return room
        }
    }

    public static func accountLookup(_ answer: HTTPAnswer) -> AccountLookup {
        if let refused = refusal(answer) { return .unknown(reason: refused.reason, block: refused.block) }
        guard let envelope = try? UserRoomEnvelope(scanning: answer.body) else {
            return .unknown(reason: "unexpected JSON from api-live/user/room", block: nil)
        }
        switch envelope.statusCode {
        case 0?:
            break
        case 19881007?:
            return .notFound
        default:
            // TikTok's words go into the account's check detail and the logs: one short line.
            let message = envelope.message.map { $0.isEmpty ? "" : " " + ServerText.oneLine($0) } ?? ""
            return .unknown(reason: "TikTok status \(envelope.statusCode.map(String.init) ?? "missing")\(message)", block: nil)
        }
        guard let user = envelope.user else {
            return .unknown(reason: "api-live/user/room without data.user", block: nil)
        }
        let roomID = user.roomId.flatMap { $0.isEmpty || $0 == "0" ? nil : $0 }
        // Room ids are integers (TIKTOK.md): anything else would go into check_alive's and room
        // info's queries as it came, and never match an answer.
        if let roomID, !roomID.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            return .unknown(reason: "room id \(ServerText.oneLine(String(roomID.prefix(40)))) is not a number", block: nil)
        }
        let status = envelope.liveRoom?.status ?? user.status
        switch status {
        case 2?:
            guard let roomID else { return .unknown(reason: "live without a room id", block: nil) }
            let room = envelope.liveRoom
            let streams = room?.streamData.map(streamURLs(fromStreamData:)) ?? StreamURLs(audioOnly: nil, flv: [])
            return .live(LiveRoom(
                roomID: roomID, title: room?.title, viewers: room?.userCount,
                startedAt: room?.startTime.map { Date(timeIntervalSince1970: TimeInterval($0)) }, streams: streams))
        case 4?:
            // Offline is both statuses 4: an answer that says so of one and not of the other may be
            // mid-change, and counting it towards an end could end a live that goes on.
            if let userStatus = user.status, userStatus != 4 {
                return .unknown(reason: "user status \(userStatus) but room status 4", block: nil)
            }
            return .offline(lastRoomID: roomID)
        case let other?:
            // 3 is reported as "paused": still the same live, not an end.
            if other == 3, let roomID {
                return .live(LiveRoom(roomID: roomID, title: envelope.liveRoom?.title, viewers: nil, startedAt: nil,
                                      streams: StreamURLs(audioOnly: nil, flv: [])))
            }
            return .unknown(reason: "room status \(other)", block: nil)
        case nil:
            return .unknown(reason: "api-live/user/room without a status", block: nil)
        }
    }

    // MARK: stream_data

    struct StreamDataDocument: Decodable {
        struct Quality: Decodable {
            struct Main: Decodable { var flv: String? }
            var main: Main?
        }
        var data: [String: Quality]?
    }

    /// `stream_data` is a JSON document inside a JSON string: parsed a second time here.
    public static func streamURLs(fromStreamData text: String) -> StreamURLs {
        guard let document = try? JSONDecoder().decode(StreamDataDocument.self, from: Data(text.utf8)),
              let qualities = document.data else { return StreamURLs(audioOnly: nil, flv: []) }
        func url(_ key: String) -> String? {
            qualities[key]?.main?.flv.flatMap { $0.isEmpty ? nil : $0 }
        }
        let video = ["ld", "sd", "hd", "uhd", "origin"].compactMap(url)
        return StreamURLs(audioOnly: url("ao"), flv: video)
    }

    // MARK: check_alive

    public static func aliveCheck(_ answer: HTTPAnswer) -> AliveCheck {
        if let refused = refusal(answer) { return .unknown(reason: refused.reason, block: refused.block) }
        // Read every few seconds while lives are open: the same one pass as the lookup's answer.
        var rooms: [(id: String?, alive: Bool)]?
        var statusCode: Int?
        do {
            try JSONScanner.scan(answer.body) { json in
                try json.object { json, key in
                    switch key {
                    case "data":
                        var list = [(id: String?, alive: Bool)]()
                        if try json.nullableArray({ json in
                            var id: String?
                            var alive: Bool?
                            try json.object { json, key in
                                switch key {
                                case "alive": alive = try json.bool()
                                case "room_id_str": id = try json.string()
                                default: try json.skip()
                                }
                            }
                            // A room without `alive` says nothing usable: the answer is not what TikTok sends.
                            guard let alive else { throw JSONScanner.Malformed() }
                            list.append((id, alive))
                        }) { rooms = list } else { rooms = nil }
                    case "status_code": statusCode = try json.int()
                    default: try json.skip()
                    }
                }
            }
        } catch {
            return .unknown(reason: "unexpected JSON from check_alive", block: nil)
        }
        guard statusCode == 0, let rooms else {
            return .unknown(reason: "check_alive status \(statusCode.map(String.init) ?? "missing")", block: nil)
        }
        var alive = [String: Bool]()
        for room in rooms {
            if let id = room.id { alive[id] = room.alive }
        }
        return .answered(alive)
    }

    // MARK: room info

    struct RoomInfoEnvelope: Decodable {
        struct DataPart: Decodable {
            struct StreamURL: Decodable {
                struct SDK: Decodable {
                    struct PullData: Decodable { var stream_data: String? }
                    var pull_data: PullData?
                }
                var flv_pull_url: [String: String]?
                var live_core_sdk_data: SDK?
            }
            var status: Int?
            var title: String?
            var user_count: Int?
            var id_str: String?
            var stream_url: StreamURL?
        }
        var data: DataPart?
        var status_code: Int?
    }

    /// `sessionSent`: 4003110 asks for a logged-in session; when one was sent, it is TikTok
    /// refusing (throttling, or the session expired), a block signal like the others.
    public static func roomInfo(_ answer: HTTPAnswer, roomID: String, sessionSent: Bool = false) -> RoomInfo {
        if let refused = refusal(answer) { return .unknown(reason: refused.reason, block: refused.block) }
        guard let envelope = try? JSONDecoder().decode(RoomInfoEnvelope.self, from: answer.body) else {
            return .unknown(reason: "unexpected JSON from room/info", block: nil)
        }
        switch envelope.status_code {
        case 0?: break
        case 4003110? where sessionSent:
            return .unknown(reason: "room info refused (4003110) although the session was sent: TikTok throttling, or the session expired",
                            block: .roomInfoRefused)
        case 4003110?, 10011?: return .restricted
        default: return .unknown(reason: "room/info status \(envelope.status_code.map(String.init) ?? "missing")", block: nil)
        }
        guard let data = envelope.data else { return .unknown(reason: "room/info without data", block: nil) }
        switch data.status {
        case 2?:
            var streams = data.stream_url?.live_core_sdk_data?.pull_data?.stream_data.map(streamURLs(fromStreamData:))
                ?? StreamURLs(audioOnly: nil, flv: [])
            if let pull = data.stream_url?.flv_pull_url {
                streams.flv += ["SD2", "SD1", "HD1", "FULL_HD1"].compactMap { pull[$0] }.filter { !streams.flv.contains($0) }
            }
            return .live(LiveRoom(roomID: roomID, title: data.title, viewers: data.user_count, startedAt: nil, streams: streams))
        case 4?:
            return .ended
        default:
            return .unknown(reason: "room status \(data.status.map(String.init) ?? "missing")", block: nil)
        }
    }
}
