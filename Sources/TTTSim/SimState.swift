import Foundation
import Synchronization
import TTTDomain

/// Accounts and lives, behind one lock: every operation is short and synchronous, so request
/// handlers and stream loops read it without hopping to an actor.
public final class SimState: Sendable {
    private struct Model {
        var accounts: [String: Account] = [:]
        var rooms: [Int64: Live] = [:]
        var liveRoomByUser: [String: Int64] = [:]
        var roomByStream: [Int64: Int64] = [:]
        var ids: IdentifierGenerator
    }

    private let model: Mutex<Model>

    public init(random: SeededRandom) {
        model = Mutex(Model(ids: IdentifierGenerator(random: random)))
    }

    /// Usernames are matched case-insensitively, with or without a leading "@" (control API only).
    public static func key(_ username: String) -> String {
        var name = username.trimmingCharacters(in: .whitespaces).lowercased()
        if name.hasPrefix("@") { name.removeFirst() }
        return name
    }

    /// Creates the account, or updates `nickname`/`restricted`/`restrictedCode` of an existing one.
    /// Returns the account and whether it was created.
    @discardableResult
    public func upsertAccount(username: String, nickname: String? = nil, restricted: Bool? = nil,
                              restrictedCode: RestrictedCode? = nil) -> (Account, created: Bool) {
        let key = Self.key(username)
        return model.withLock { model in
            if var account = model.accounts[key] {
                if let nickname { account.nickname = nickname }
                if let restricted { account.restricted = restricted }
                if let restrictedCode { account.restrictedCode = restrictedCode }
                model.accounts[key] = account
                return (account, false)
            }
            let account = Account(
                username: key, nickname: nickname ?? key, userId: model.ids.userId(), secUid: model.ids.secUid(),
                restricted: restricted ?? false, restrictedCode: restrictedCode ?? .ageRestricted, lastRoomId: nil)
            model.accounts[key] = account
            return (account, true)
        }
    }

    public func account(_ username: String) -> Account? {
        let key = username.lowercased()
        return model.withLock { $0.accounts[key] }
    }

    public func accounts() -> [Account] {
        model.withLock { Array($0.accounts.values) }.sorted { $0.username < $1.username }
    }

    /// The account and its current live, if any, read together.
    public func accountAndLive(_ username: String) -> (Account, Live?)? {
        let key = username.lowercased()
        return model.withLock { model in
            guard let account = model.accounts[key] else { return nil }
            return (account, model.liveRoomByUser[key].flatMap { model.rooms[$0] })
        }
    }

    public func room(_ roomId: Int64) -> Live? { model.withLock { $0.rooms[roomId] } }

    public func account(ofRoom roomId: Int64) -> (Account, Live)? {
        model.withLock { model in
            guard let live = model.rooms[roomId], let account = model.accounts[live.username] else { return nil }
            return (account, live)
        }
    }

    public func live(streamId: Int64) -> Live? {
        model.withLock { model in model.roomByStream[streamId].flatMap { model.rooms[$0] } }
    }

    public func isLive(roomId: Int64) -> Bool { model.withLock { $0.rooms[roomId]?.isLive ?? false } }

    /// Current lives, oldest first.
    public func currentLives() -> [Live] {
        model.withLock { model in model.liveRoomByUser.values.compactMap { model.rooms[$0] } }
            .sorted { $0.startedAt < $1.startedAt }
    }

    /// Fails fast before the audio is encoded.
    public func checkCanGoLive(_ username: String) throws(SimError) {
        let key = Self.key(username)
        let problem: SimError? = model.withLock { model in
            if model.accounts[key] == nil { return .unknownAccount(key) }
            if model.liveRoomByUser[key] != nil { return .alreadyLive(key) }
            return nil
        }
        if let problem { throw problem }
    }

    public func startLive(username: String, title: String?, audio: FLVAudio, audioPath: String?, loop: Bool, now: Date = Date()) throws(SimError) -> Live {
        let key = Self.key(username)
        let result: Result<Live, SimError> = model.withLock { model in
            guard var account = model.accounts[key] else { return .failure(.unknownAccount(key)) }
            guard model.liveRoomByUser[key] == nil else { return .failure(.alreadyLive(key)) }
            var roomId = model.ids.roomId()
            while model.rooms[roomId] != nil { roomId = model.ids.roomId() }
            var streamId = model.ids.streamId()
            while model.roomByStream[streamId] != nil { streamId = model.ids.streamId() }
            let live = Live(
                roomId: roomId, streamId: streamId, username: key, title: title ?? "\(account.nickname) is LIVE",
                startedAt: now, endedAt: nil, viewers: model.ids.viewers(), audio: audio, loop: loop, audioPath: audioPath)
            model.rooms[roomId] = live
            model.roomByStream[streamId] = roomId
            model.liveRoomByUser[key] = roomId
            account.lastRoomId = roomId
            model.accounts[key] = account
            return .success(live)
        }
        return try result.get()
    }

    /// Ends the current live of `username`; with `roomId`, only if that is still the current one
    /// (a schedule must not end a live someone else started meanwhile).
    public func endLive(username: String, roomId: Int64? = nil, now: Date = Date()) throws(SimError) -> Live {
        let key = Self.key(username)
        let result: Result<Live, SimError> = model.withLock { model in
            guard model.accounts[key] != nil else { return .failure(.unknownAccount(key)) }
            guard let current = model.liveRoomByUser[key], roomId == nil || roomId == current,
                  var live = model.rooms[current]
            else { return .failure(.notLive(key)) }
            live.endedAt = now
            model.rooms[current] = live
            model.liveRoomByUser[key] = nil
            return .success(live)
        }
        return try result.get()
    }

    /// Pauses or resumes the current live of `username`.
    public func setPaused(username: String, _ paused: Bool) throws(SimError) -> Live {
        let key = Self.key(username)
        let result: Result<Live, SimError> = model.withLock { model in
            guard model.accounts[key] != nil else { return .failure(.unknownAccount(key)) }
            guard let current = model.liveRoomByUser[key], var live = model.rooms[current] else { return .failure(.notLive(key)) }
            live.paused = paused
            model.rooms[current] = live
            return .success(live)
        }
        return try result.get()
    }

    /// Registers a stream client; false when the live has ended meanwhile.
    public func addStreamClient(roomId: Int64) -> Bool {
        model.withLock { model in
            guard model.rooms[roomId]?.isLive == true else { return false }
            model.rooms[roomId]!.streamClients += 1
            return true
        }
    }

    public func removeStreamClient(roomId: Int64) {
        model.withLock { model in model.rooms[roomId]?.streamClients -= 1 }
    }

    public var streamClients: Int {
        model.withLock { model in model.rooms.values.reduce(0) { $0 + $1.streamClients } }
    }

    public var liveCount: Int { model.withLock { $0.liveRoomByUser.count } }
}
