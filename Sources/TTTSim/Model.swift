import Foundation
import TTTDomain

/// A simulated TikTok account. `username` is the lower-cased uniqueId (TikTok matches it
/// case-insensitively).
public struct Account: Sendable {
    public let username: String
    public var nickname: String
    public let userId: Int64
    public let secUid: String
    /// Age-restricted: room info answers `restrictedCode` without a session cookie.
    public var restricted: Bool
    public var restrictedCode = RestrictedCode.ageRestricted
    /// The room of the latest live, kept after it ends (offline answers show it).
    public var lastRoomId: Int64?
}

/// What room info answers an age-restricted room without a session (TIKTOK.md): both are seen.
public enum RestrictedCode: Int, Sendable, CaseIterable {
    case ageRestricted = 4003110
    /// "Request params error".
    case paramsError = 10011
}

/// One live (one room). Ended lives are kept so their room id keeps answering "ended".
public struct Live: Sendable {
    public let roomId: Int64
    public let streamId: Int64
    public let username: String
    public let title: String
    public let startedAt: Date
    public var endedAt: Date?
    /// Viewer count shown by the endpoints (random, fixed for the live).
    public let viewers: Int
    public let audio: FLVAudio
    public let loop: Bool
    /// Audio file served, nil for silence (for `/_sim/lives`).
    public let audioPath: String?
    public var streamClients: Int = 0
    /// The host paused the live (TikTok's status 3, *uncertain*): still the same live and room;
    /// the account's answer gives no stream data meanwhile, room info says 3, check_alive alive.
    public var paused = false

    public var isLive: Bool { endedAt == nil }
    /// TikTok's status of the room: 2 live, 3 paused, 4 ended.
    public var status: Int { endedAt != nil ? 4 : paused ? 3 : 2 }
}

public enum SimError: Error, Equatable, CustomStringConvertible {
    case unknownAccount(String)
    case alreadyLive(String)
    case notLive(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .unknownAccount(let name): "no account named \(name)"
        case .alreadyLive(let name): "\(name) is already live"
        case .notLive(let name): "\(name) is not live"
        case .invalid(let message): message
        }
    }
}

/// Random TikTok-looking identifiers. Room ids are 19 digits ≥ 7e18 (beyond Double's exact
/// range, which is the point); stream ids and user ids are 19 digits too, as on TikTok.
struct IdentifierGenerator {
    var random: SeededRandom

    mutating func roomId() -> Int64 { Int64.random(in: 7_000_000_000_000_000_000 ... 7_999_999_999_999_999_999, using: &random) }
    mutating func streamId() -> Int64 { Int64.random(in: 1_000_000_000_000_000_000 ... 1_999_999_999_999_999_999, using: &random) }
    mutating func userId() -> Int64 { Int64.random(in: 6_700_000_000_000_000_000 ... 6_999_999_999_999_999_999, using: &random) }
    mutating func viewers() -> Int { Int.random(in: 3 ... 900, using: &random) }

    /// TikTok's secUid: "MS4wLjABAAAA" followed by base64url text.
    mutating func secUid() -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        return "MS4wLjABAAAA" + String((0..<64).map { _ in alphabet[Int.random(in: 0 ..< alphabet.count, using: &random)] })
    }
}
