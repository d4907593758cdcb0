import Foundation

/// A live as TikTok showed it in one answer.
public struct ObservedLive: Sendable, Equatable {
    public var roomID: String
    public var title: String?
    public var viewers: Int?
    public var streamURL: String?
    public var restricted: Bool

    public init(roomID: String, title: String?, viewers: Int?, streamURL: String?, restricted: Bool) {
        self.roomID = roomID
        self.title = title
        self.viewers = viewers
        self.streamURL = streamURL
        self.restricted = restricted
    }
}

/// One answer about one account, from a lookup or from a batched check_alive of its live room.
public enum Observation: Sendable, Equatable {
    case live(ObservedLive)
    case offline
    case notFound
    case unknown(String)
    /// check_alive said the room is still live.
    case roomAlive(String)
    /// check_alive said the room is no longer live.
    case roomGone(String)
}

/// What the store knows of an account between two checks.
public struct DetectionState: Sendable, Equatable {
    public struct OpenLive: Sendable, Equatable {
        public var id: Int64
        public var roomID: String

        public init(id: Int64, roomID: String) {
            self.id = id
            self.roomID = roomID
        }
    }

    public var openLive: OpenLive?
    public var offlineStreak: Int
    public var notFoundStreak: Int

    public init(openLive: OpenLive?, offlineStreak: Int, notFoundStreak: Int) {
        self.openLive = openLive
        self.offlineStreak = offlineStreak
        self.notFoundStreak = notFoundStreak
    }
}

public enum LiveEndReason: String, Sendable {
    /// Confirmed offline the configured number of times in a row.
    case offline
    /// TikTok reports another room: the old live is over, a new one began.
    case newRoom = "new_room"
    /// The account was removed while it was live: nobody watches the live any more.
    case removed
}

/// What to write after an observation. The store applies it in one transaction with its events.
public struct DetectionDecision: Sendable, Equatable {
    public var end: (id: Int64, reason: LiveEndReason)?
    public var start: ObservedLive?
    /// The same live seen again: refresh its title and viewers.
    public var refresh: ObservedLive?
    public var offlineStreak: Int
    public var notFoundStreak: Int
    /// Nil leaves the account's check state as it was (a check_alive answer about a room).
    public var checkState: CheckState?
    public var detail: String?
    /// A live looks over but is not confirmed yet: check the account again soon.
    public var recheckSoon: Bool

    public static func == (lhs: DetectionDecision, rhs: DetectionDecision) -> Bool {
        lhs.end?.id == rhs.end?.id && lhs.end?.reason == rhs.end?.reason && lhs.start == rhs.start
            && lhs.refresh == rhs.refresh && lhs.offlineStreak == rhs.offlineStreak
            && lhs.notFoundStreak == rhs.notFoundStreak && lhs.checkState == rhs.checkState
            && lhs.detail == rhs.detail && lhs.recheckSoon == rhs.recheckSoon
    }
}

/// The hysteresis of live detection: a live starts on the first live answer; it ends only after
/// `offlineConfirmations` offline answers in a row. Unknown answers (errors, blocks) neither count
/// nor reset; a single "not found" is treated as unknown (TikTok says it wrongly of live users).
public enum LiveLifecycle {
    public static let notFoundConfirmations = 2

    public static func decide(_ state: DetectionState, _ observation: Observation, offlineConfirmations: Int) -> DetectionDecision {
        var decision = DetectionDecision(
            end: nil, start: nil, refresh: nil, offlineStreak: state.offlineStreak,
            notFoundStreak: state.notFoundStreak, checkState: nil, detail: nil, recheckSoon: false)
        switch observation {
        case .live(let live):
            decision.offlineStreak = 0
            decision.notFoundStreak = 0
            decision.checkState = .live
            decision.detail = liveDetail(live)
            if let open = state.openLive {
                if open.roomID == live.roomID {
                    decision.refresh = live
                } else {
                    decision.end = (open.id, .newRoom)
                    decision.start = live
                }
            } else {
                decision.start = live
            }
        case .offline:
            decision.notFoundStreak = 0
            decision.checkState = .offline
            confirmOffline(state, &decision, offlineConfirmations)
        case .roomGone(let roomID):
            guard let open = state.openLive, open.roomID == roomID else { return decision }
            confirmOffline(state, &decision, offlineConfirmations)
        case .roomAlive(let roomID):
            guard let open = state.openLive, open.roomID == roomID else { return decision }
            decision.offlineStreak = 0
        case .notFound:
            decision.notFoundStreak = state.notFoundStreak + 1
            if state.openLive == nil && decision.notFoundStreak >= notFoundConfirmations {
                decision.checkState = .notFound
                decision.detail = "TikTok says this account does not exist"
            } else {
                decision.checkState = .unknown
                decision.detail = "TikTok said \"not found\" once; waiting for confirmation"
            }
        case .unknown(let reason):
            decision.checkState = .unknown
            decision.detail = reason
        }
        return decision
    }

    /// The check detail of an account found live.
    public static func liveDetail(_ live: ObservedLive) -> String? {
        live.restricted ? "age-restricted live: set the tiktok_session credential to capture it" : nil
    }

    private static func confirmOffline(_ state: DetectionState, _ decision: inout DetectionDecision, _ confirmations: Int) {
        guard let open = state.openLive else {
            decision.offlineStreak = 0
            return
        }
        decision.offlineStreak = state.offlineStreak + 1
        if decision.offlineStreak >= max(1, confirmations) {
            decision.end = (open.id, .offline)
            decision.offlineStreak = 0
        } else {
            decision.recheckSoon = true
        }
    }
}
