import Foundation
import TTTDomain

/// The live-detection view of TikTok. Every failure is `unknown` (with a reason and, when TikTok
/// pushed back, a block signal): an error is never "offline". A call is one request, and one more
/// for each redirect it follows or retry it makes; those wait for `followUps` first, so that the
/// egress's budget holds for them too.
public protocol TikTokClient: Sendable {
    /// `GET {web}/api-live/user/room/`: is this account live, and in which room.
    func lookUp(_ username: Username, followUps: (any FollowUpPacing)?) async -> AccountLookup
    /// `GET {webcast}/webcast/room/check_alive/`: which of these rooms are still live (one request).
    func checkAlive(_ roomIDs: [String], followUps: (any FollowUpPacing)?) async -> AliveCheck
    /// `GET {webcast}/webcast/room/info/`: a room's details and stream URLs (with the session cookie when set).
    func roomInfo(_ roomID: String, followUps: (any FollowUpPacing)?) async -> RoomInfo
}

extension TikTokClient {
    /// Unpaced: the redirects, if any, are followed at once.
    public func lookUp(_ username: Username) async -> AccountLookup { await lookUp(username, followUps: nil) }
    public func checkAlive(_ roomIDs: [String]) async -> AliveCheck { await checkAlive(roomIDs, followUps: nil) }
    public func roomInfo(_ roomID: String) async -> RoomInfo { await roomInfo(roomID, followUps: nil) }
}

/// The budget of the egress a call goes through, for the requests it makes after its first (a
/// redirect's next hop, a retry on a new connection): each waits for the egress's next start, as a
/// request of its own would, rather than follow at once — a WAF that bounces every request would
/// otherwise get four.
public protocol FollowUpPacing: Sendable {
    /// Returns at the egress's next start; throws if the task is cancelled meanwhile.
    func nextStart() async throws
}

public struct StreamURLs: Sendable, Equatable, Codable {
    /// The audio-only FLV (`ao`), the right input for transcription when TikTok offers it.
    public var audioOnly: String?
    /// Video FLVs from the lowest quality up (`ld`, `sd`, … then `flv_pull_url`).
    public var flv: [String]

    public init(audioOnly: String?, flv: [String]) {
        self.audioOnly = audioOnly
        self.flv = flv
    }

    public var isEmpty: Bool { audioOnly == nil && flv.isEmpty }
    /// The URL a pipeline should read: audio-only first, else the smallest video.
    public var best: String? { audioOnly ?? flv.first }
}

public struct LiveRoom: Sendable, Equatable {
    public var roomID: String
    public var title: String?
    public var viewers: Int?
    public var startedAt: Date?
    public var streams: StreamURLs
    /// Age-restricted or private: stream URLs need a logged-in session tttd does not have.
    public var restricted: Bool

    public init(roomID: String, title: String?, viewers: Int?, startedAt: Date?, streams: StreamURLs, restricted: Bool = false) {
        self.roomID = roomID
        self.title = title
        self.viewers = viewers
        self.startedAt = startedAt
        self.streams = streams
        self.restricted = restricted
    }
}

/// Why TikTok refused to answer: a reason for the egress to slow down.
public enum BlockSignal: Sendable, Equatable {
    /// The WAF challenge page ("Please wait...", SlardarWAF) where JSON was expected.
    case challengePage
    /// HTTP 200 with an empty body.
    case emptyBody
    case forbidden
    /// Room info's code 4003110 although the session was sent (without one it means an
    /// age-restricted room): TikTok throttling, or a session that expired.
    case roomInfoRefused
    /// HTTP 429, with the Retry-After delay when given.
    case tooManyRequests(retryAfter: Duration?)
}

public enum AccountLookup: Sendable, Equatable {
    case live(LiveRoom)
    /// Offline for sure. `lastRoomID` is the room TikTok still reports, if any.
    case offline(lastRoomID: String?)
    /// TikTok says the account does not exist (it sometimes says so wrongly of live accounts).
    case notFound
    case unknown(reason: String, block: BlockSignal?)
}

public enum AliveCheck: Sendable, Equatable {
    /// Alive state per room id; ids TikTok left out are absent (not known, not dead).
    case answered([String: Bool])
    case unknown(reason: String, block: BlockSignal?)
}

public enum RoomInfo: Sendable, Equatable {
    case live(LiveRoom)
    case ended
    /// 4003110 (or 10011): a logged-in session is needed.
    case restricted
    case unknown(reason: String, block: BlockSignal?)
}

extension AccountLookup {
    public var block: BlockSignal? {
        if case .unknown(_, let block) = self { return block }
        return nil
    }

    /// When the live began, as TikTok reports it (whole seconds), if the answer says.
    public var startedAt: Date? {
        if case .live(let room) = self { return room.startedAt }
        return nil
    }
}
