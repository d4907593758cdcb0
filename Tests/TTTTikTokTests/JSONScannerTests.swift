import Foundation
import Testing
@testable import TTTTikTok

@Suite("JSON scanner")
struct JSONScannerTests {
    /// One document of the syntax table: whether RFC 8259 accepts it, and whether Foundation's
    /// `JSONSerialization` is expected to say the same.
    struct SyntaxCase: Sendable, CustomTestStringConvertible {
        var text: String
        var valid: Bool
        var foundationAgrees = true
        var testDescription: String { "\(valid ? "valid" : "invalid") \(text.debugDescription)" }
    }

    static let syntaxCases: [SyntaxCase] = [
        // Invalid
        .init(text: #"{"a":1"#, valid: false), .init(text: #"{"a":"#, valid: false), .init(text: #"{"a""#, valid: false),
        .init(text: "{", valid: false), .init(text: "[1,2", valid: false), .init(text: "[", valid: false),
        .init(text: #""abc"#, valid: false), .init(text: #""abc\"#, valid: false), .init(text: "]", valid: false),
        .init(text: #"{"a":1]"#, valid: false), .init(text: "[,1]", valid: false), .init(text: "[1 2]", valid: false),
        // Foundation (swift-foundation's parser) takes trailing commas; RFC 8259 does not.
        .init(text: "[1,]", valid: false, foundationAgrees: false),
        .init(text: #"{"a":1,}"#, valid: false, foundationAgrees: false),
        .init(text: #"{"a" 1}"#, valid: false), .init(text: #"{"a"::1}"#, valid: false),
        .init(text: "01", valid: false), .init(text: "-01", valid: false), .init(text: "-", valid: false),
        .init(text: "1.", valid: false), .init(text: "1e", valid: false), .init(text: "1e+", valid: false),
        .init(text: ".5", valid: false), .init(text: "+1", valid: false), .init(text: "0x10", valid: false),
        .init(text: "\"a\u{01}b\"", valid: false), .init(text: "\"tab\there\"", valid: false), .init(text: "\"new\nline\"", valid: false),
        .init(text: #""\x""#, valid: false), .init(text: #""\u12G4""#, valid: false), .init(text: #""\u12""#, valid: false),
        .init(text: "{a:1}", valid: false), .init(text: "{1:1}", valid: false), .init(text: "'a'", valid: false),
        .init(text: "{'a':1}", valid: false), .init(text: "tru", valid: false), .init(text: "nul", valid: false),
        .init(text: "True", valid: false), .init(text: "NaN", valid: false), .init(text: "{} x", valid: false),
        .init(text: "[] []", valid: false), .init(text: "", valid: false), .init(text: " \n\t\r ", valid: false),
        // RFC 8259 lets a parser ignore a byte order mark or refuse it: Foundation ignores it, the scanner refuses it.
        .init(text: "\u{FEFF}{}", valid: false, foundationAgrees: false),
        // Valid
        .init(text: "{}", valid: true), .init(text: "[]", valid: true), .init(text: "0", valid: true),
        .init(text: "-0", valid: true), .init(text: "1.5e-3", valid: true), .init(text: "1E+2", valid: true),
        .init(text: "-12.5E10", valid: true), .init(text: #""a""#, valid: true), .init(text: #""""#, valid: true),
        .init(text: "true", valid: true), .init(text: "false", valid: true), .init(text: "null", valid: true),
        .init(text: #"[[[]],{"a":[{"b":null}]},[1,"x",true,-0.5]]"#, valid: true),
        .init(text: #"{"a":{"b":{"c":[1,2,{"d":false}]}},"e":""}"#, valid: true),
        .init(text: #""\" \\ \/ \b \f \n \r \t""#, valid: true), .init(text: #""\u00e9\u00E9""#, valid: true),
        .init(text: #""\ud83d\ude00""#, valid: true), .init(text: "\"é😀\"", valid: true), .init(text: #""\u0000""#, valid: true),
        .init(text: "\"\u{7F}\"", valid: true), .init(text: #"{"a":1,"a":2}"#, valid: true),
        .init(text: " \t\n\r{ \"a\" : [ 1 , 2 ] , \"b\" : { } , \"c\" : \"\" } \n", valid: true),
        .init(text: " [ ] ", valid: true), .init(text: "\n\"x\"", valid: true), .init(text: "[1] ", valid: true),
        // The grammar allows any \u escape; Foundation refuses a lone surrogate (the scanner reads it as U+FFFD).
        .init(text: #""\ud800""#, valid: true, foundationAgrees: false),
        .init(text: #""\udc00\ud800""#, valid: true, foundationAgrees: false),
    ]

    @Test("syntax: valid documents are read, invalid ones refused, as Foundation and RFC 8259 say", arguments: syntaxCases)
    func syntax(_ example: SyntaxCase) {
        let data = Data(example.text.utf8)
        let scanned = (try? JSONScanner.scan(data) { try $0.skip() }) != nil
        #expect(scanned == example.valid)
        #expect(ReferenceJSON(data).valid == example.valid, "the test's own reference")
        let foundation = (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil
        #expect((foundation == example.valid) == example.foundationAgrees, "JSONSerialization")
    }

    @Test("depth: 256 nested arrays or objects are read, deeper nesting is refused without a crash")
    func depth() {
        func accepted(_ text: String) -> Bool { (try? JSONScanner.scan(Data(text.utf8)) { try $0.skip() }) != nil }
        #expect(accepted(String(repeating: "[", count: 256) + String(repeating: "]", count: 256)))
        #expect(!accepted(String(repeating: "[", count: 257) + String(repeating: "]", count: 257)))
        #expect(accepted(String(repeating: #"{"a":"#, count: 256) + "1" + String(repeating: "}", count: 256)))
        #expect(!accepted(String(repeating: #"{"a":"#, count: 257) + "1" + String(repeating: "}", count: 257)))
        #expect(!accepted(String(repeating: "[", count: 100_000)))
        #expect(!accepted(String(repeating: #"{"a":["#, count: 100_000)))
        #expect(throws: JSONScanner.Malformed.self) {
            try ResponseParser.UserRoomEnvelope(scanning: Data((#"{"data":{"user":{"x":"# + String(repeating: "[", count: 100_000)).utf8))
        }
    }

    @Test("string(): escapes decoded exactly as JSONSerialization decodes them; a lone surrogate becomes U+FFFD")
    func strings() throws {
        let texts = [#""\"""#, #""\\""#, #""\/""#, #""\b\f\n\r\t""#, #""\u00e9""#, #""\u00E9\u4e2d\u0041""#,
                     #""\ud83d\ude00""#, #""\uD83D\uDE00""#, "\"é\"", "\"😀\"", #""\u0000\u001f""#, #""""#, #""plain""#,
                     #""mixed \u00e9 é \ud83d\ude00 😀 \"q\" \\ \/ end""#, "\"\u{7F}\""]
        for text in texts {
            let data = Data(text.utf8)
            let scanned = try JSONScanner.scan(data) { try $0.string() }
            let foundation = try #require(JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? String)
            #expect(scanned.map { Array($0.unicodeScalars) } == Array(foundation.unicodeScalars), "\(text)")
        }
        for (text, expected) in [(#""\ud800""#, "\u{FFFD}"), (#""a\ud800b""#, "a\u{FFFD}b"), (#""\udc00\ud800""#, "\u{FFFD}\u{FFFD}"),
                                 (#""\ud800\u0041""#, "\u{FFFD}A"), (#""\ud83d\ud83d\ude00""#, "\u{FFFD}😀")] {
            let scanned = try JSONScanner.scan(Data(text.utf8)) { try $0.string() }
            #expect(scanned.map { Array($0.unicodeScalars) } == Array(expected.unicodeScalars), "\(text)")
        }
        // Strings are stepped over eight bytes at a time: an escape, a quote or a control byte at
        // every offset of a long string, among UTF-8 and every other printable byte.
        let filler = String(decoding: Array(0x20...0x7E).filter { $0 != 0x22 && $0 != 0x5C }, as: UTF8.self) + "é😀"
        for offset in 0..<20 {
            let head = String(filler.prefix(offset)), tail = String(filler.dropFirst(offset))
            for special in [#"\""#, #"\\"#, #"\n"#, #"\u00e9"#] {
                let data = Data(("\"" + head + special + tail + "\"").utf8)
                let scanned = try JSONScanner.scan(data) { try $0.string() }
                let foundation = try #require(JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) as? String)
                #expect(scanned.map { Array($0.unicodeScalars) } == Array(foundation.unicodeScalars), "\(special) at \(offset)")
            }
            #expect(try JSONScanner.scan(Data(("\"" + head + "\"").utf8)) { try $0.string() } == head)
            for control in ["\u{00}", "\u{09}", "\u{0A}", "\u{1F}"] {
                #expect(throws: JSONScanner.Malformed.self, "control \(control.debugDescription) at \(offset)") {
                    try JSONScanner.scan(Data(("\"" + head + control + tail + "\"").utf8)) { try $0.string() }
                }
            }
            #expect(throws: JSONScanner.Malformed.self, "unterminated at \(offset)") {
                try JSONScanner.scan(Data(("\"" + head).utf8)) { try $0.string() }
            }
        }
        #expect(try JSONScanner.scan(Data("null".utf8)) { try $0.string() } == nil)
        for text in ["5", "true", "[]", "{}", "nul"] {
            #expect(throws: JSONScanner.Malformed.self, "\(text)") { try JSONScanner.scan(Data(text.utf8)) { try $0.string() } }
        }
    }

    @Test("int(): whole numbers that fit an Int; fractions, exponents, overflow and other types refused")
    func ints() throws {
        for (text, expected) in [("0", 0), ("-0", 0), ("-7", -7), ("42", 42), ("9223372036854775807", Int.max),
                                 ("-9223372036854775808", Int.min)] {
            #expect(try JSONScanner.scan(Data(text.utf8)) { try $0.int() } == expected, "\(text)")
        }
        #expect(try JSONScanner.scan(Data("null".utf8)) { try $0.int() } == nil)
        for text in ["9223372036854775808", "-9223372036854775809", "1.0", "1e2", "1E2", "-", "01", #""5""#, "true", "[]", "nul"] {
            #expect(throws: JSONScanner.Malformed.self, "\(text)") { try JSONScanner.scan(Data(text.utf8)) { try $0.int() } }
        }
    }

    @Test("keys are matched after their escapes are decoded")
    func escapedKeys() {
        func lookUp(_ body: String) -> AccountLookup {
            ResponseParser.accountLookup(.init(status: 200, contentType: "application/json", retryAfter: nil, body: Data(body.utf8)))
        }
        #expect(lookUp(#"{"st\u0061tusCode":0}"#) == .unknown(reason: "api-live/user/room without data.user", block: nil))
        #expect(lookUp(#"{"data":null,"st\u0061tusCode":19881007}"#) == .notFound)
        #expect(lookUp(#"{"\u0064ata":{"us\u0065r":{"r\u006fomId":"7684008970436823815","st\u0061tus":4}},"statusCode":0}"#)
                == .offline(lastRoomID: "7684008970436823815"))
        // A key that only looks like a wanted one is not it.
        #expect(lookUp(#"{"statusCode ":0,"statuscode":0}"#) == .unknown(reason: "TikTok status missing", block: nil))
    }

    /// Realistic answers, as TikTok sends them, to start from.
    static let userRoomAnswers = [
        #"{"data":{"user":{"id":"6779","uniqueId":"alice","nickname":"Alice","roomId":"7684008970436823815","status":2},"liveRoom":{"status":2,"title":"Bonsoir","startTime":1789072789,"streamId":"1272339927704012379","liveRoomStats":{"userCount":12},"streamData":{"pull_data":{"options":{"qualities":[]},"stream_data":"# + DocumentWriter.streamData + #"}}}},"extra":{},"message":"","statusCode":0}"#,
        #"{"data":{"user":{"roomId":"7684008970436823815","status":4},"liveRoom":{"status":4}},"extra":{},"message":"","statusCode":0}"#,
        #"{"data":{"user":{"roomId":"","status":4}},"statusCode":0}"#,
        #"{"data":null,"message":"user_not_found","extra":{},"statusCode":19881007}"#,
        #"{"message":"params_error","statusCode":19881005}"#,
    ]

    /// Runs `compare` over `documents`, records the first disagreements, and returns how many of each verdict.
    func differential(_ documents: [[UInt8]], _ compare: (Data) -> Verdict) -> (agree: Int, oldTolerated: Int, replaced: Int) {
        var counts = (agree: 0, oldTolerated: 0, replaced: 0)
        var disagreements = 0
        for document in documents {
            switch compare(Data(document)) {
            case .agree: counts.agree += 1
            case .oldToleratedInvalid: counts.oldTolerated += 1
            case .scannerReplacedBadText: counts.replaced += 1
            case .disagree(let what):
                disagreements += 1
                if disagreements <= 20 { Issue.record("\(what): \(String(decoding: document, as: UTF8.self).debugDescription)") }
            }
        }
        #expect(disagreements == 0)
        return counts
    }

    @Test("api-live/user/room: the scanner reads what JSONDecoder read, for generated and mutated answers")
    func userRoomDifferential() {
        var writer = DocumentWriter(rng: SplitMix64(state: 0x7474_7464))
        let originals = Self.userRoomAnswers.map { Array($0.utf8) } + (0..<400).map { _ in Array(writer.userRoomDocument().utf8) }
        let mutants = (0..<3_000).map { _ in writer.mutate(writer.rng.pick(originals)) }
        let whole = differential(originals, compareUserRoom)
        #expect(whole.agree == originals.count)
        let mutated = differential(mutants, compareUserRoom)
        #expect(mutated.agree > mutants.count / 2)
        // Enough of the generated answers are read through, so their fields are compared.
        #expect(originals.filter { (try? ResponseParser.UserRoomEnvelope(scanning: Data($0))) != nil }.count > 100)
    }

    @Test("check_alive: aliveCheck answers what JSONDecoder's reading answered, for generated and mutated answers")
    func aliveDifferential() {
        var writer = DocumentWriter(rng: SplitMix64(state: 0xA11_7E))
        let originals = [Array(#"{"data":[{"alive":false,"room_id":7684008970436823816,"room_id_str":"7684008970436823816"},{"alive":true,"room_id":7684008970436823815,"room_id_str":"7684008970436823815"}],"extra":{"now":1789625067764},"status_code":0}"#.utf8)]
            + (0..<300).map { _ in Array(writer.aliveDocument().utf8) }
        let mutants = (0..<2_000).map { _ in writer.mutate(writer.rng.pick(originals)) }
        #expect(differential(originals, compareAlive).agree == originals.count)
        #expect(differential(mutants, compareAlive).agree > mutants.count / 2)
    }
}

// MARK: - Differential testing: the old Codable shapes, a seeded generator, an independent syntax check

/// The Codable envelope `accountLookup` decoded with `JSONDecoder` before `JSONScanner`.
struct OldUserRoomEnvelope: Decodable {
    struct DataPart: Decodable {
        struct User: Decodable { var roomId: String?; var status: Int? }
        struct LiveRoomPart: Decodable {
            struct Stats: Decodable { var userCount: Int? }
            struct StreamDataPart: Decodable {
                struct PullData: Decodable { var stream_data: String? }
                var pull_data: PullData?
            }
            var status: Int?; var title: String?; var startTime: Int64?
            var liveRoomStats: Stats?; var streamData: StreamDataPart?
        }
        var user: User?; var liveRoom: LiveRoomPart?
    }
    var data: DataPart?; var message: String?; var statusCode: Int?
}

/// The Codable envelope `aliveCheck` decoded with `JSONDecoder` before `JSONScanner`.
struct OldAlive: Decodable {
    struct Room: Decodable { var alive: Bool; var room_id_str: String? }
    var data: [Room]?; var status_code: Int?
}

/// Every field `accountLookup` reads, from either envelope, to compare them whole.
struct UserRoomFields: Equatable {
    var statusCode: Int?, message: String?
    var hasUser: Bool, roomId: String?, userStatus: Int?
    var hasRoom: Bool, roomStatus: Int?, title: String?, startTime: Int?, userCount: Int?, streamData: String?

    init(_ old: OldUserRoomEnvelope) {
        statusCode = old.statusCode; message = old.message
        let user = old.data?.user, room = old.data?.liveRoom
        hasUser = user != nil; roomId = user?.roomId; userStatus = user?.status
        hasRoom = room != nil; roomStatus = room?.status; title = room?.title; startTime = room?.startTime.map(Int.init)
        userCount = room?.liveRoomStats?.userCount; streamData = room?.streamData?.pull_data?.stream_data
    }

    init(_ new: ResponseParser.UserRoomEnvelope) {
        statusCode = new.statusCode; message = new.message
        hasUser = new.user != nil; roomId = new.user?.roomId; userStatus = new.user?.status
        hasRoom = new.liveRoom != nil; roomStatus = new.liveRoom?.status; title = new.liveRoom?.title
        startTime = new.liveRoom?.startTime; userCount = new.liveRoom?.userCount; streamData = new.liveRoom?.streamData
    }
}

/// SplitMix64: seeded, so every run reads the same documents.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(bound)) }
    mutating func percent(_ chance: Int) -> Bool { below(100) < chance }
    mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}

/// Writes documents of TikTok's shapes: members in random order, random whitespace (before the top
/// level too), unknown members
/// of every JSON type, and in each wanted place sometimes nothing, null or a wrong type. No document
/// repeats a key in an object (JSON leaves the meaning open: JSONDecoder keeps the first, the scanner
/// the last), and Int fields never hold a fraction or an exponent (JSONDecoder reads `2.0` and `1e2`
/// as the Ints 2 and 100; the scanner refuses them).
struct DocumentWriter {
    var rng: SplitMix64

    /// Unknown member names: none is a wanted key or one edit away from one, so a mutation cannot make a duplicate.
    static let unknownNames = ["id", "uniqueId", "nickname", "secUid", "log_pb", "coverUrl", "hashtag", "streamId",
                               "ageRestricted", "qualities", "owner", #"n\u00e9"#, "", "emoji😀", "user_count", "STATUS"]
    static let strings = [#""""#, #""hello""#, #""caf\u00e9 \"q\" \\ \/ \b\f\n\r\t""#, #""\ud83d\ude00 😀 é""#,
                          #""https://pull/x.flv?a=1&b=2""#, #""{\"nested\":[1,\"json\"]}""#, #""\u0000\u001F\uD83D\uDE00""#]
    static let numbers = ["0", "-0", "7", "-12", "1.5", "1.5e-3", "1E+2", "2e10", "-0.0", "9223372036854775808",
                          "1e400", "7684008970436823815", "123456789012345678901234567890"]
    static let streamData = #""{\"common\":{\"room_id\":\"7684008970436823815\"},\"data\":{\"ao\":{\"main\":{\"flv\":\"https://pull/stream.flv?only_audio=1\",\"sdk_params\":\"{\\\"vbitrate\\\":0}\"}}}}""#

    mutating func space() -> String { rng.percent(85) ? "" : rng.pick([" ", "\n", "\t", "\r\n", "  "]) }

    /// An object of `members` (a nil value leaves its key out) and `extras` unknown members.
    mutating func object(_ members: [(String, String?)], extras: Int = 0) -> String {
        var list = members.compactMap { key, value in value.map { (key, $0) } }
        var names = Self.unknownNames
        for _ in 0..<extras { list.append((names.remove(at: rng.below(names.count)), value(depth: 1))) }
        for index in list.indices.reversed() { list.swapAt(index, rng.below(index + 1)) }
        let body = list.map { key, value in space() + "\"\(key)\"" + space() + ":" + space() + value + space() }
        return "{" + (body.isEmpty ? space() : body.joined(separator: ",")) + "}"
    }

    mutating func array(_ elements: [String]) -> String {
        "[" + (elements.isEmpty ? space() : elements.map { space() + $0 + space() }.joined(separator: ",")) + "]"
    }

    /// Any JSON value, valid by RFC 8259.
    mutating func value(depth: Int) -> String {
        switch rng.below(depth > 2 ? 5 : 7) {
        case 0: return "null"
        case 1: return rng.pick(["true", "false"])
        case 2: return rng.pick(Self.numbers)
        case 3: return rng.pick(Self.strings)
        case 4: return rng.pick(["[]", "{}"])
        case 5: return array((0..<rng.below(4)).map { _ in value(depth: depth + 1) })
        default: return object([], extras: rng.below(4))
        }
    }

    /// What a wanted place holds: mostly one of `good`, sometimes nothing, null or one of `wrong`.
    mutating func slot(_ good: [String], wrong: [String]) -> String? {
        switch rng.below(25) {
        case 0: return nil
        case 1: return "null"
        case 2: return rng.pick(wrong)
        default: return rng.pick(good)
        }
    }

    /// An api-live/user/room answer: offline, live (with streamData), paused, not found, params error...
    mutating func userRoomDocument() -> String {
        let roomID = "\"\(7_684_008_970_436_823_815 as UInt64 + UInt64(rng.below(100)))\""
        let user = object([
            ("roomId", slot([roomID, roomID, #""""#, #""0""#, #""7684\u0030""#], wrong: ["7684008970436823815", "true", "[]"])),
            ("status", slot(["2", "4", "3", "1", "-0"], wrong: [#""2""#, "false", "{}", "9223372036854775808"])),
        ], extras: rng.below(4))
        let pull = object([
            ("stream_data", slot([Self.streamData, #""""#, #""{}""#], wrong: ["{}", "1", "[\"s\"]"])),
            ("options", rng.percent(50) ? #"{"qualities":[{"key":"ld"}],"default_quality":"origin"}"# : nil),
        ], extras: rng.below(2))
        let room = object([
            ("status", slot(["2", "4", "3", "0"], wrong: [#""2""#, "true", "-9223372036854775809"])),
            ("title", slot([#""Bonsoir""#, #""\u2728 live\n""#, #""""#, #""é 😀 \"x\"""#], wrong: ["12", "false", #"["t"]"#])),
            ("startTime", slot(["1789072789", "0", "-1", "9223372036854775807", "-9223372036854775808"],
                               wrong: [#""1789072789""#, "true", "9223372036854775808"])),
            ("liveRoomStats", slot([object([("userCount", slot(["12", "0", "4817"], wrong: [#""12""#, "[]"]))], extras: rng.below(3))],
                                   wrong: ["[]", "12"])),
            ("streamData", slot([object([("pull_data", slot([pull], wrong: ["[]", #""""#]))], extras: rng.below(2))],
                                wrong: [#""""#, "[]"])),
        ], extras: rng.below(4))
        let data = object([
            ("user", slot([user], wrong: ["[]", #""u""#, "0"])),
            ("liveRoom", slot([room], wrong: ["[]", "true"])),
        ], extras: rng.below(3))
        return space() + object([
            ("data", slot([data, data, data, "null"], wrong: ["[]", #""data""#, "1"])),
            ("message", slot([#""""#, #""user_not_found""#, #""params_error""#, #""caf\u00e9 \"q\" \ud83d\ude00""#, #""é 😀""#],
                             wrong: ["5", "{}", "true"])),
            ("statusCode", slot(["0", "0", "0", "19881007", "19881005", "-1"], wrong: [#""0""#, "true", "9223372036854775808", "[0]"])),
            ("extra", rng.percent(70) ? object([("now", "1789625067764")], extras: rng.below(2)) : nil),
        ], extras: rng.below(3)) + space()
    }

    /// A check_alive answer for a few rooms (ids may repeat: the last one counts, in both readers).
    mutating func aliveDocument() -> String {
        var rooms = [String]()
        for _ in 0..<rng.below(5) {
            let id = String(7_684_008_970_436_823_815 as UInt64 + UInt64(rng.below(4)))
            rooms.append(object([
                ("alive", slot(["true", "false"], wrong: ["1", #""true""#, "[]"])),
                ("room_id_str", slot(["\"\(id)\"", #""""#], wrong: [id, "false"])),
                ("room_id", rng.percent(70) ? id : nil),
            ], extras: rng.below(3)))
        }
        return space() + object([
            ("data", slot([array(rooms)], wrong: ["{}", #""x""#, "[null]", "[1]", "[[]]"])),
            ("status_code", slot(["0", "0", "0", "1", "4003110"], wrong: [#""0""#, "false"])),
            ("extra", rng.percent(80) ? object([("now", "1789625067764")], extras: rng.below(2)) : nil),
        ], extras: rng.below(2)) + space()
    }

    /// One edit: truncation, or one byte deleted, inserted or replaced. A `.`, `e` or `E` is never put
    /// after a digit, so no Int field gains a fraction or an exponent.
    mutating func mutate(_ document: [UInt8]) -> [UInt8] {
        var bytes = document
        let alphabet = Array(#"{}[],:"\ 019-.eEtrunlfa"#.utf8) + [0x0A, 0x00, 0x01, 0x7F, 0xC3, 0xFF]
        var byte = rng.pick(alphabet)
        let at = rng.below(bytes.count)
        if Array(".eE".utf8).contains(byte), at > 0, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at - 1]) {
            byte = UInt8(ascii: "x")
        }
        switch rng.below(4) {
        case 0: bytes.removeSubrange(at...)
        case 1: bytes.remove(at: at)
        case 2: bytes.insert(byte, at: at)
        default: bytes[at] = byte
        }
        return bytes
    }
}

/// An independent check of RFC 8259's grammar (recursive descent, no depth limit), for telling the
/// scanner's refusals of invalid documents from disagreements on valid ones. Bytes from 0x80 are taken
/// as they come inside strings: UTF-8 validity is reported apart, as are lone surrogate escapes, which
/// the grammar allows but JSONDecoder refuses in the strings it decodes.
struct ReferenceJSON {
    var valid = false, loneSurrogate = false, invalidUTF8 = false
    private var bytes: [UInt8] = [], at = 0

    init(_ data: Data) {
        bytes = Array(data)
        invalidUTF8 = String(validating: bytes, as: UTF8.self) == nil
        valid = value()
        space()
        valid = valid && at == bytes.count
    }

    private var current: UInt8? { at < bytes.count ? bytes[at] : nil }
    private mutating func take(_ byte: Character) -> Bool {
        guard current == byte.asciiValue else { return false }
        at += 1
        return true
    }
    private mutating func space() { while let byte = current, [0x20, 0x0A, 0x0D, 0x09].contains(byte) { at += 1 } }
    private mutating func digits() -> Int {
        let start = at
        while let byte = current, (0x30...0x39).contains(byte) { at += 1 }
        return at - start
    }

    private mutating func value() -> Bool {
        space()
        switch current {
        case UInt8(ascii: "{"):
            at += 1; space()
            if take("}") { return true }
            repeat {
                space()
                guard current == UInt8(ascii: "\""), string() else { return false }
                space()
                guard take(":"), value() else { return false }
                space()
            } while take(",")
            return take("}")
        case UInt8(ascii: "["):
            at += 1; space()
            if take("]") { return true }
            repeat {
                guard value() else { return false }
                space()
            } while take(",")
            return take("]")
        case UInt8(ascii: "\""): return string()
        case UInt8(ascii: "t"), UInt8(ascii: "f"), UInt8(ascii: "n"):
            for word in ["true", "false", "null"] where bytes[at...].starts(with: word.utf8) {
                at += word.utf8.count
                return true
            }
            return false
        default:
            _ = take("-")
            if !take("0") { guard let byte = current, (0x31...0x39).contains(byte) else { return false }; _ = digits() }
            if take("."), digits() == 0 { return false }
            if take("e") || take("E") {
                _ = take("+") || take("-")
                if digits() == 0 { return false }
            }
            return true
        }
    }

    private mutating func string() -> Bool {
        at += 1
        var highPending = false
        while let byte = current {
            at += 1
            var unit: UInt16?
            switch byte {
            case UInt8(ascii: "\""):
                if highPending { loneSurrogate = true }
                return true
            case UInt8(ascii: "\\"):
                guard let escape = current else { return false }
                at += 1
                if escape == UInt8(ascii: "u") {
                    guard at + 4 <= bytes.count, let code = UInt16(String(decoding: bytes[at..<at + 4], as: UTF8.self), radix: 16),
                          bytes[at..<at + 4].allSatisfy({ Character(Unicode.Scalar($0)).isHexDigit }) else { return false }
                    at += 4
                    unit = code
                } else if !Array(#""\/bfnrt"#.utf8).contains(escape) {
                    return false
                }
            case 0..<0x20: return false
            default: break
            }
            switch unit {
            case (0xD800...0xDBFF)?:
                if highPending { loneSurrogate = true }
                highPending = true
            case (0xDC00...0xDFFF)?:
                if !highPending { loneSurrogate = true }
                highPending = false
            default:
                if highPending { loneSurrogate = true }
                highPending = false
            }
        }
        return false
    }
}

/// How the old and the new reading of one document compare.
enum Verdict: Equatable {
    case agree
    /// Invalid JSON (by RFC 8259) that JSONDecoder tolerated and the scanner refuses.
    case oldToleratedInvalid
    /// A lone surrogate escape or invalid UTF-8 that JSONDecoder refused in a string it decoded and the scanner replaces with U+FFFD.
    case scannerReplacedBadText
    case disagree(String)
}

/// Whether `skip()` and the reference disagree on the document's syntax.
func syntaxDisagreement(_ data: Data, _ reference: ReferenceJSON) -> Verdict? {
    let accepted = (try? JSONScanner.scan(data) { try $0.skip() }) != nil
    return accepted == reference.valid ? nil : .disagree("skip() says valid: \(accepted), RFC 8259: \(reference.valid)")
}

/// Compares the old `JSONDecoder` reading of an api-live/user/room answer with `UserRoomEnvelope(scanning:)`.
func compareUserRoom(_ data: Data) -> Verdict {
    let reference = ReferenceJSON(data)
    let old = try? JSONDecoder().decode(OldUserRoomEnvelope.self, from: data)
    let new = try? ResponseParser.UserRoomEnvelope(scanning: data)
    if let wrong = syntaxDisagreement(data, reference) { return wrong }
    switch (old, new) {
    case (nil, nil): return .agree
    case (_?, nil) where !reference.valid: return .oldToleratedInvalid
    case (_?, nil): return .disagree("JSONDecoder accepted, the scanner refused")
    case (nil, _?) where !reference.valid: return .disagree("the scanner accepted invalid JSON")
    case (nil, _?) where reference.loneSurrogate || reference.invalidUTF8: return .scannerReplacedBadText
    case (nil, _?): return .disagree("the scanner accepted, JSONDecoder refused")
    case let (old?, new?):
        let (before, after) = (UserRoomFields(old), UserRoomFields(new))
        return before == after ? .agree : .disagree("JSONDecoder read \(before), the scanner \(after)")
    }
}

/// Compares the old `JSONDecoder` reading of a check_alive answer with `ResponseParser.aliveCheck`.
func compareAlive(_ data: Data) -> Verdict {
    let answer = ResponseParser.HTTPAnswer(status: 200, contentType: "application/json", retryAfter: nil, body: data)
    guard ResponseParser.refusal(answer) == nil else { return .agree }  // empty or HTML: decided before any JSON
    let reference = ReferenceJSON(data)
    if let wrong = syntaxDisagreement(data, reference) { return wrong }
    let new = ResponseParser.aliveCheck(answer)
    let malformed = AliveCheck.unknown(reason: "unexpected JSON from check_alive", block: nil)
    guard let old = try? JSONDecoder().decode(OldAlive.self, from: data) else {
        if new == malformed { return .agree }
        if !reference.valid { return .disagree("the scanner accepted invalid JSON: \(new)") }
        return reference.loneSurrogate || reference.invalidUTF8 ? .scannerReplacedBadText : .disagree("JSONDecoder refused, aliveCheck gave \(new)")
    }
    if new == malformed { return reference.valid ? .disagree("JSONDecoder accepted, the scanner refused") : .oldToleratedInvalid }
    var expected = AliveCheck.unknown(reason: "check_alive status \(old.status_code.map(String.init) ?? "missing")", block: nil)
    if old.status_code == 0, let rooms = old.data {
        var alive = [String: Bool]()
        for room in rooms { if let id = room.room_id_str { alive[id] = room.alive } }
        expected = .answered(alive)
    }
    return new == expected ? .agree : .disagree("JSONDecoder gave \(expected), aliveCheck \(new)")
}
