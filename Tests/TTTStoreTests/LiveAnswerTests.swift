import Foundation
import PostgresNIO
import Testing
import TTTDomain
import TTTStore

/// The answers an open live gets most, each written in one statement, against a real
/// PostgreSQL: they must write what the full record writes, and nothing when the live they assume
/// is not the one open.
@Suite("one-statement answers about open lives", .timeLimit(.minutes(2)))
struct LiveAnswerTests {
    /// A pace under which a live account's next lookup depends on its weight (not the target).
    static let pace = Store.Pace(target: .seconds(60), totalWeight: 100, budgetPerSecond: 1)

    @Test("a lookup that finds the live on in the same room writes what the full record writes")
    func stillLiveMatchesRecord() async throws {
        try await TestDatabase.withStore { store in
            let ids = try await startLives(store, ["fast", "full"])
            let answer = Self.room("r1", title: "second title", viewers: 50, restricted: true)
            #expect(try await store.recordStillLive(answer, accountID: ids["fast"]!, node: "a", pace: Self.pace))
            _ = try await store.record(.live(answer), accountID: ids["full"]!, node: "a", offlineConfirmations: 2,
                                       pace: Self.pace, aliveRecheck: .seconds(15), fromLookup: true)
            let fast = try await snapshot(store, "fast"), full = try await snapshot(store, "full")
            #expect(fast.fields == full.fields)
            #expect(fast.fields.contains("second title") && fast.fields.contains("50") && fast.fields.contains("lease free"))
            // The next lookup: the live account's share of its weight, ±10 % at random.
            let weight = Store.weight(livesIn30Days: 1, wentLiveThisWeek: true)
            let interval = Self.pace.interval(weight: weight * Store.liveLookupShare)
            for next in [fast.nextCheckIn, full.nextCheckIn] {
                #expect(next > interval * 0.9 - 2 && next < interval * 1.1 + 1)
            }
        }
    }

    @Test("a lookup that finds another room, or no live open, writes nothing in one statement")
    func stillLiveAssumptionChecked() async throws {
        try await TestDatabase.withStore { store in
            let ids = try await startLives(store, ["someone"])
            let before = try await snapshot(store, "someone")
            #expect(try await !store.recordStillLive(Self.room("r2", title: "other"), accountID: ids["someone"]!, node: "a", pace: Self.pace))
            #expect(try await snapshot(store, "someone").fields == before.fields)
            _ = try await store.client.query("UPDATE lives SET status = 'ended', ended_at = now(), end_reason = 'offline'")
            #expect(try await !store.recordStillLive(Self.room("r1", title: "other"), accountID: ids["someone"]!, node: "a", pace: Self.pace))
            var titles = [String]()
            for try await title in try await store.client.query("SELECT title FROM lives").decode(String.self) { titles.append(title) }
            #expect(titles == ["first title"])
        }
    }

    @Test("check_alive's 'gone' in one statement writes what the full record writes: counted first, then the end and its event")
    func roomGoneMatchesRecord() async throws {
        try await TestDatabase.withStore { store in
            _ = try await startLives(store, ["fast", "full", "other"])
            var lives = try await claimLives(store)
            guard case .counted? = try await store.recordRoomGone(lives["fast"]!, node: "a", offlineConfirmations: 2) else {
                Issue.record("the first 'gone' was not counted")
                return
            }
            _ = try await store.record(.roomGone("r1"), accountID: lives["full"]!.accountID, node: "a", offlineConfirmations: 2,
                                       pace: Self.pace, aliveRecheck: .seconds(15), fromLookup: false)
            let fast = try await snapshot(store, "fast"), full = try await snapshot(store, "full")
            #expect(fast.fields == full.fields)
            #expect(fast.fields.contains("offline streak 1") && fast.fields.contains("alive lease free"))
            for answer in [fast, full] {
                #expect(answer.nextCheckIn < 1)
                #expect(answer.nextAliveCheckIn > 0 && answer.nextAliveCheckIn <= 2)
            }

            // Not under a check_alive lease this node no longer holds: nothing written.
            let other = try await snapshot(store, "other")
            _ = try await store.client.query("UPDATE lives SET alive_lease_owner = 'b' WHERE username = 'other'")
            #expect(try await store.recordRoomGone(lives["other"]!, node: "a", offlineConfirmations: 2) == nil)
            #expect(try await snapshot(store, "other").fields == other.fields.map { $0 == "alive lease free" ? "alive lease held" : $0 })

            // The second "gone" confirms the end.
            lives = try await claimLives(store)
            guard case .ended(let recorded)? = try await store.recordRoomGone(lives["fast"]!, node: "a", offlineConfirmations: 2) else {
                Issue.record("the second 'gone' did not end the live")
                return
            }
            #expect(recorded.decision.end?.id == lives["fast"]!.liveID && recorded.decision.end?.reason == .offline)
            #expect(recorded.eventIDs.count == 1)
            _ = try await store.record(.roomGone("r1"), accountID: lives["full"]!.accountID, node: "a", offlineConfirmations: 2,
                                       pace: Self.pace, aliveRecheck: .seconds(15), fromLookup: false)
            let fastEnd = try await endedSnapshot(store, "fast"), fullEnd = try await endedSnapshot(store, "full")
            #expect(fastEnd == fullEnd)
            #expect(fastEnd.contains("ended offline") && fastEnd.contains("live false") && fastEnd.contains("offline streak 0"))
            let ended = try await payloads(store, type: "live_ended")
            #expect(ended.count == 2 && ended["fast"] == ended["full"])
        }
    }

    @Test("a lookup's 'offline' on a live account in one statement writes what the full record writes: counted, then the end")
    func lookupOfflineMatchesRecord() async throws {
        try await TestDatabase.withStore { store in
            let ids = try await startLives(store, ["fast", "full"])
            let before = try await snapshot(store, "fast")
            guard case .counted? = try await store.recordLookupOffline(accountID: ids["fast"]!, node: "a", pace: Self.pace,
                                                                       offlineConfirmations: 2) else {
                Issue.record("the first 'offline' was not counted")
                return
            }
            _ = try await store.record(.offline, accountID: ids["full"]!, node: "a", offlineConfirmations: 2,
                                       pace: Self.pace, aliveRecheck: .seconds(15), fromLookup: true)
            let fast = try await snapshot(store, "fast"), full = try await snapshot(store, "full")
            #expect(fast.fields == full.fields)
            #expect(fast.fields.contains("offline streak 1") && fast.fields.contains("offline") && fast.fields.contains("lease free"))
            #expect(fast.fields.contains("live true") && fast.fields.contains("checked now true"))
            for answer in [fast, full] {
                // Looked up again soon to confirm; check_alive's schedule is not a lookup's to move.
                #expect(answer.nextCheckIn > 3 && answer.nextCheckIn <= 5)
                #expect(abs(answer.nextAliveCheckIn - before.nextAliveCheckIn) < 2)
            }

            // The second lookup confirms the end.
            _ = try await store.client.query("UPDATE accounts SET lease_owner = 'a', lease_expires_at = now() + interval '1 minute'")
            guard case .ended(let recorded)? = try await store.recordLookupOffline(accountID: ids["fast"]!, node: "a", pace: Self.pace,
                                                                                  offlineConfirmations: 2) else {
                Issue.record("the second 'offline' did not end the live")
                return
            }
            #expect(recorded.decision.end?.reason == .offline && recorded.decision.checkState == .offline)
            #expect(recorded.eventIDs.count == 1)
            _ = try await store.record(.offline, accountID: ids["full"]!, node: "a", offlineConfirmations: 2,
                                       pace: Self.pace, aliveRecheck: .seconds(15), fromLookup: true)
            let fastEnd = try await endedSnapshot(store, "fast"), fullEnd = try await endedSnapshot(store, "full")
            #expect(fastEnd == fullEnd)
            #expect(fastEnd.contains("ended offline") && fastEnd.contains("live false") && fastEnd.contains("lease free"))
            var endedLive: Int64?
            for try await id in try await store.client.query("SELECT id FROM lives WHERE username = 'fast'").decode(Int64.self) { endedLive = id }
            #expect(recorded.decision.end?.id == endedLive)
            let ended = try await payloads(store, type: "live_ended")
            #expect(ended.count == 2 && ended["fast"] == ended["full"])
            // Offline now: the next lookup by the account's whole weight, ±10 % at random.
            let interval = Self.pace.interval(weight: Store.weight(livesIn30Days: 1, wentLiveThisWeek: true))
            for name in ["fast", "full"] {
                for try await next in try await store.client.query("""
                    SELECT extract(epoch FROM next_check_at - now())::float8 FROM accounts WHERE username = \(name)
                    """).decode(Double.self) {
                    #expect(next > interval * 0.9 - 2 && next < interval * 1.1 + 1)
                }
            }
        }
    }

    @Test("a lookup's 'offline' without the account's lease, or with no live open, writes nothing in one statement")
    func lookupOfflineAssumptionChecked() async throws {
        try await TestDatabase.withStore { store in
            let ids = try await startLives(store, ["someone"])
            _ = try await store.client.query("UPDATE accounts SET lease_owner = 'b'")
            let taken = try await snapshot(store, "someone")
            #expect(try await store.recordLookupOffline(accountID: ids["someone"]!, node: "a", pace: Self.pace,
                                                        offlineConfirmations: 1) == nil)
            #expect(try await snapshot(store, "someone").fields == taken.fields)

            _ = try await store.client.query("UPDATE accounts SET lease_owner = 'a'")
            _ = try await store.client.query("UPDATE lives SET status = 'ended', ended_at = now(), end_reason = 'offline'")
            #expect(try await store.recordLookupOffline(accountID: ids["someone"]!, node: "a", pace: Self.pace,
                                                        offlineConfirmations: 1) == nil)
            var rows = [String]()
            for try await (live, state, lease) in try await store.client.query(
                "SELECT live, check_state, lease_owner FROM accounts").decode((Bool, String, String).self) {
                rows.append("\(live) \(state) \(lease)")
            }
            #expect(rows == ["true live a"])
            var events = 0
            for try await count in try await store.client.query("SELECT count(*) FROM events WHERE type = 'live_ended'").decode(Int.self) {
                events = count
            }
            #expect(events == 0)
        }
    }

    /// The lives whose check_alive is due within a minute, by account, leased to node "a".
    func claimLives(_ store: Store) async throws -> [String: Store.ClaimedLive] {
        let lives = try await store.claimLivesForAliveCheck(node: "a", limit: 10, lease: .seconds(60), ahead: .seconds(60))
        return Dictionary(uniqueKeysWithValues: lives.map { ($0.username.value, $0) })
    }

    /// Each account's event of `type`, without the live's id, the account and the time.
    func payloads(_ store: Store, type: String) async throws -> [String: String] {
        var payloads = [String: String]()
        for try await (name, payload) in try await store.client.query("""
            SELECT username, (payload - 'live_id' - 'username' - 'at')::text FROM events WHERE type = \(type)
            """).decode((String, String).self) {
            payloads[name] = payload
        }
        return payloads
    }

    /// The account's row and its ended live's, as text.
    func endedSnapshot(_ store: Store, _ name: String) async throws -> [String] {
        let rows = try await store.client.query("""
            SELECT a.offline_streak, a.live, a.check_state, a.weight, l.status, coalesce(l.end_reason, ''),
                   l.alive_lease_owner IS NULL, l.ended_at IS NOT NULL,
                   a.not_found_streak, coalesce(a.check_detail, ''), a.lease_owner IS NULL,
                   coalesce(a.last_checked_at > now() - interval '1 minute', false)
            FROM accounts a JOIN lives l ON l.account_id = a.id
            WHERE a.username = \(name)
            """)
        for try await row in rows {
            let c = row.makeRandomAccess()
            let offline = try c[0].decode(Int.self), live = try c[1].decode(Bool.self), state = try c[2].decode(String.self)
            let weight = try c[3].decode(Double.self), status = try c[4].decode(String.self), reason = try c[5].decode(String.self)
            let aliveLeaseFree = try c[6].decode(Bool.self), endedAt = try c[7].decode(Bool.self)
            let notFound = try c[8].decode(Int.self), detail = try c[9].decode(String.self)
            let leaseFree = try c[10].decode(Bool.self), checkedNow = try c[11].decode(Bool.self)
            return ["offline streak \(offline)", "live \(live)", state, String(format: "weight %.9f", weight),
                    "\(status) \(reason)", "alive lease free \(aliveLeaseFree)", "end time \(endedAt)",
                    "not found streak \(notFound)", "detail \(detail)", leaseFree ? "lease free" : "lease held",
                    "checked now \(checkedNow)"]
        }
        throw StoreTestError("no live for \(name)")
    }

    @Test("a live start in one statement writes what the full record writes, its event included")
    func startMatchesRecord() async throws {
        try await TestDatabase.withStore { store in
            _ = try await store.addAccounts([Username(trusted: "fast"), Username(trusted: "full")], labels: [], by: "test")
            let claimed = try await store.recordAndClaim([], pace: Self.pace, node: "a", limit: 10, lease: .seconds(60))
            let fast = try #require(claimed.first { $0.username.value == "fast" })
            let full = try #require(claimed.first { $0.username.value == "full" })
            let answer = Observation.live(Self.room("r1", viewers: 20, restricted: true))
            let decision = LiveLifecycle.decide(DetectionState(openLive: nil, offlineStreak: 0, notFoundStreak: 0), answer,
                                                offlineConfirmations: 2)
            let recorded = try #require(try await store.recordStart(decision, accountID: fast.id, node: "a", pace: Self.pace,
                                                                    aliveRecheck: .seconds(15)))
            #expect(recorded.startedLiveID != nil && recorded.eventIDs.count == 1)
            _ = try await store.record(answer, accountID: full.id, node: "a", offlineConfirmations: 2, pace: Self.pace,
                                       aliveRecheck: .seconds(15), fromLookup: true)
            let fastRow = try await snapshot(store, "fast"), fullRow = try await snapshot(store, "full")
            #expect(fastRow.fields == fullRow.fields)
            #expect(abs(fastRow.nextAliveCheckIn - fullRow.nextAliveCheckIn) < 1)
            let weight = Store.weight(livesIn30Days: 1, wentLiveThisWeek: true)
            let interval = Self.pace.interval(weight: weight * Store.liveLookupShare)
            for next in [fastRow.nextCheckIn, fullRow.nextCheckIn] {
                #expect(next > interval * 0.9 - 2 && next < interval * 1.1 + 1)
            }
            // The events: the same payload but for the live's id, the account and the time.
            let started = try await payloads(store, type: "live_started")
            #expect(started.count == 2 && started["fast"] == started["full"])
            #expect(started["fast"]?.contains("\"restricted\": true") == true)

            // Seen live again by a lookup claimed before the start: not a second live.
            #expect(try await store.recordStart(decision, accountID: fast.id, node: "a", pace: Self.pace,
                                                aliveRecheck: .seconds(15)) == nil)
            var lives = 0
            for try await count in try await store.client.query("SELECT count(*) FROM lives").decode(Int.self) { lives = count }
            #expect(lives == 2)
        }
    }

    static func room(_ id: String, title: String = "first title", viewers: Int = 10, restricted: Bool = false) -> ObservedLive {
        ObservedLive(roomID: id, title: title, viewers: viewers, streamURL: "http://127.0.0.1/stream-\(id).flv", restricted: restricted)
    }

    /// Adds the accounts and records a live answer for each (a live opens in room "r1"), then
    /// leases them to node "a" again, as a claim before their next lookup does.
    func startLives(_ store: Store, _ names: [String]) async throws -> [String: Int64] {
        _ = try await store.addAccounts(names.map { Username(trusted: $0) }, labels: [], by: "test")
        let claimed = try await store.recordAndClaim([], pace: Self.pace, node: "a", limit: 10, lease: .seconds(60))
        guard claimed.count == names.count else { throw StoreTestError("claimed \(claimed.count) accounts of \(names.count)") }
        for account in claimed {
            let recorded = try await store.record(.live(Self.room("r1")), accountID: account.id, node: "a", offlineConfirmations: 2,
                                                  pace: Self.pace, aliveRecheck: .seconds(15), fromLookup: true)
            guard recorded?.startedLiveID != nil else { throw StoreTestError("no live started for \(account.username)") }
        }
        _ = try await store.client.query("UPDATE accounts SET lease_owner = 'a', lease_expires_at = now() + interval '1 minute'")
        return Dictionary(uniqueKeysWithValues: claimed.map { ($0.username.value, $0.id) })
    }

    struct Snapshot {
        /// Everything but the times, which carry jitter.
        var fields: [String]
        var nextCheckIn: Double
        var nextAliveCheckIn: Double
    }

    /// The account's row and its open live's, as text.
    func snapshot(_ store: Store, _ name: String) async throws -> Snapshot {
        let rows = try await store.client.query("""
            SELECT a.offline_streak, a.not_found_streak, a.live, a.check_state, coalesce(a.check_detail, ''),
                   a.lease_owner IS NULL, a.weight, coalesce(a.room_id, ''), coalesce(a.last_checked_at > now() - interval '1 minute', false),
                   extract(epoch FROM a.next_check_at - now())::float8,
                   l.title, l.peak_viewers, l.stream_url, l.restricted, l.alive_lease_owner IS NULL,
                   extract(epoch FROM l.next_alive_check_at - now())::float8
            FROM accounts a JOIN lives l ON l.account_id = a.id AND l.status = 'live'
            WHERE a.username = \(name)
            """)
        for try await row in rows {
            let c = row.makeRandomAccess()
            let offline = try c[0].decode(Int.self), notFound = try c[1].decode(Int.self), live = try c[2].decode(Bool.self)
            let state = try c[3].decode(String.self), detail = try c[4].decode(String.self), leaseFree = try c[5].decode(Bool.self)
            let weight = try c[6].decode(Double.self), room = try c[7].decode(String.self), checkedNow = try c[8].decode(Bool.self)
            let title = try c[10].decode(String.self), viewers = try c[11].decode(Int.self)
            let stream = try c[12].decode(String.self), restricted = try c[13].decode(Bool.self)
            let aliveLeaseFree = try c[14].decode(Bool.self)
            return Snapshot(fields: [
                "offline streak \(offline)", "not found streak \(notFound)", "live \(live)", state, detail,
                leaseFree ? "lease free" : "lease held", String(format: "weight %.9f", weight), "room \(room)",
                "checked now \(checkedNow)", title, "\(viewers)", stream, "restricted \(restricted)",
                aliveLeaseFree ? "alive lease free" : "alive lease held",
            ], nextCheckIn: try c[9].decode(Double.self), nextAliveCheckIn: try c[15].decode(Double.self))
        }
        throw StoreTestError("no open live for \(name)")
    }
}
