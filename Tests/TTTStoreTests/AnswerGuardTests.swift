import Foundation
import Logging
import PostgresNIO
import Testing
import TTTDomain
import TTTStore

/// What keeps an answer from being written twice or out of its time, against a real PostgreSQL:
/// a removed account's live ends with it, `record` ends a live only once whatever raced to end it,
/// an answer is written only under the lease it was asked under, and a "live" asked for before its
/// room's live ended starts no second live.
@Suite("answers written once, under their lease, and not after their time", .timeLimit(.minutes(2)))
struct AnswerGuardTests {
    static let pace = LiveAnswerTests.pace

    // MARK: Removal

    @Test("removing a live account ends its live with one live_ended event, and a live without account takes no check_alive slot")
    func removalEndsTheLive() async throws {
        try await TestDatabase.withStore { store in
            _ = try await LiveAnswerTests().startLives(store, ["xavier", "yasmine"])
            // x's check_alive is the most overdue: it would be first in any claim.
            _ = try await store.client.query("UPDATE lives SET next_alive_check_at = now() - interval '1 hour' WHERE username = 'xavier'")
            let xLive = try await liveID(store, "xavier"), yLive = try await liveID(store, "yasmine")

            _ = try await store.removeAccounts([Username(trusted: "xavier")], by: "test")

            // Nothing would ever check a live whose account is gone: removal ends it, in the same transaction.
            #expect(try await liveState(store, xLive) == ["ended", "removed", "ended at set", "alive lease free"])
            #expect(try await liveState(store, yLive) == ["live", "", "ended at unset", "alive lease free"])
            var reasons = [String]()
            for try await reason in try await store.client.query("""
                SELECT coalesce(payload->>'reason', '') FROM events WHERE type = 'live_ended' AND live_id = \(xLive)
                """).decode(String.self) {
                reasons.append(reason)
            }
            #expect(reasons == ["removed"])

            // The one slot goes to the live that can be answered: y's.
            let claimed = try await store.claimLivesForAliveCheck(node: "a", limit: 1, lease: .seconds(60), ahead: .seconds(60))
            #expect(claimed.map(\.liveID) == [yLive])

            // A live without account that an earlier version left open (the migration ends those) does
            // not take the slot either: it is never leased, and a batch of one would come back empty.
            _ = try await store.client.query("""
                UPDATE lives SET status = 'live', ended_at = NULL, end_reason = NULL,
                    next_alive_check_at = now() - interval '1 hour'
                WHERE id = \(xLive)
                """)
            _ = try await store.client.query(
                "UPDATE lives SET alive_lease_owner = NULL, alive_lease_expires_at = NULL WHERE id = \(yLive)")
            let again = try await store.claimLivesForAliveCheck(node: "a", limit: 1, lease: .seconds(60), ahead: .seconds(60))
            #expect(again.map(\.liveID) == [yLive])
        }
    }

    // MARK: A race to end one live

    /// How a lookup's "offline" on a live account is written: in full, or in one statement.
    enum OfflineWrite: String, CaseIterable, CustomTestStringConvertible {
        case fullRecord = "in full", oneStatement = "in one statement"
        var testDescription: String { rawValue }

        /// Writes the answer; whether it ended a live.
        func write(_ store: Store, accountID: Int64) async throws -> (written: Bool, ended: Bool) {
            switch self {
            case .fullRecord:
                let recorded = try await store.record(.offline, accountID: accountID, node: "a", offlineConfirmations: 1,
                                                      pace: AnswerGuardTests.pace, aliveRecheck: .seconds(15), fromLookup: true)
                return (recorded != nil, recorded?.decision.end != nil)
            case .oneStatement:
                switch try await store.recordLookupOffline(accountID: accountID, node: "a", pace: AnswerGuardTests.pace,
                                                           offlineConfirmations: 1) {
                case nil: return (false, false)
                case .counted?: return (true, false)
                case .ended(let recorded)?: return (true, recorded.decision.end != nil)
                }
            }
        }
    }

    @Test("a lookup's 'offline' that waited for the row lock while check_alive ended the live does not end it again",
          arguments: OfflineWrite.allCases)
    func recordAfterLockWaitEndsOnce(_ write: OfflineWrite) async throws {
        try await TestDatabase.withStore { store in
            let id = try #require(try await LiveAnswerTests().startLives(store, ["xavier"])["xavier"])
            // Ended as recordRoomGone ends it: the account's row locked first, then the live and its event.
            let answer = try await whileLocked(store, accountID: id, by: """
                UPDATE accounts SET live = false, offline_streak = 0 WHERE id = \(id);
                UPDATE lives SET status = 'ended', ended_at = now(), end_reason = 'offline',
                    alive_lease_owner = NULL, alive_lease_expires_at = NULL
                WHERE account_id = \(id) AND status = 'live';
                INSERT INTO events (type, live_id, username, payload)
                SELECT 'live_ended', id, username, jsonb_build_object('type', 'live_ended'::text, 'reason', 'offline'::text)
                FROM lives WHERE account_id = \(id)
                """) {
                // A lookup's answer, from before the end, one confirmation from ending the live itself.
                try await write.write(store, accountID: id)
            }
            // The full record writes the account offline and ends nothing; the one statement
            // leaves the answer to it.
            #expect(!answer.ended && answer.written == (write == .fullRecord))
            #expect(try await count(store, "SELECT count(*) FROM events WHERE type = 'live_ended'") == 1)
            #expect(try await count(store, "SELECT count(*) FROM accounts WHERE live") == 0)
        }
    }

    @Test("a lookup's 'offline' in one statement that waited for the row lock while the account moved to a new room ends neither live")
    func oneStatementAfterNewRoom() async throws {
        try await TestDatabase.withStore { store in
            let id = try #require(try await LiveAnswerTests().startLives(store, ["xavier"])["xavier"])
            // The old live ended and a new one opened in room r2, as `record` writes a new room.
            let answer = try await whileLocked(store, accountID: id, by: """
                UPDATE lives SET status = 'ended', ended_at = now(), end_reason = 'new_room' WHERE account_id = \(id) AND status = 'live';
                INSERT INTO lives (account_id, username, room_id, started_at, status, next_alive_check_at)
                VALUES (\(id), 'xavier', 'r2', now(), 'live', now());
                UPDATE accounts SET room_id = 'r2' WHERE id = \(id)
                """) {
                try await OfflineWrite.oneStatement.write(store, accountID: id)
            }
            // The lives it saw open were not the account's any more: the full record answers.
            #expect(!answer.written)
            #expect(try await count(store, "SELECT count(*) FROM accounts WHERE live AND room_id = 'r2' AND offline_streak = 0") == 1)
            #expect(try await count(store, "SELECT count(*) FROM lives WHERE status = 'live' AND room_id = 'r2'") == 1)
        }
    }

    /// Runs `writes` (statements separated by ";\n") in a transaction that holds the account's row
    /// lock, starts `answer` meanwhile, waits until it waits for that lock, commits, and returns its result.
    func whileLocked<T: Sendable>(_ store: Store, accountID: Int64, by writes: String,
                                  _ answer: @escaping @Sendable () async throws -> T) async throws -> T {
        let logger = Logger(label: "test")
        // The pool has two connections: this transaction holds one, the answer gets the other, and
        // the wait is watched from this one.
        let answering = try await store.client.withTransaction(logger: logger) { connection -> Task<T, any Error> in
            for try await _ in try await connection.query(
                "SELECT id FROM accounts WHERE id = \(accountID) FOR UPDATE", logger: logger
            ).decode(Int64.self) {}
            for statement in writes.components(separatedBy: ";\n") {
                try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
            }
            let task = Task { try await answer() }
            do {
                try await waitUntil("the answer waits for the account's row lock") {
                    try await lockWaiters(connection, logger: logger) > 0
                }
            } catch {
                task.cancel()
                throw error
            }
            return task
        }
        // Committed: the waiting answer goes on.
        return try await answering.value
    }

    func count(_ store: Store, _ sql: String) async throws -> Int {
        for try await value in try await store.client.query(PostgresQuery(unsafeSQL: sql)).decode(Int.self) { return value }
        return 0
    }

    // MARK: Leases

    @Test("a lookup answer whose account lease another node holds writes nothing")
    func lookupUnderAnotherNodesLease() async throws {
        try await TestDatabase.withStore { store in
            let id = try #require(try await LiveAnswerTests().startLives(store, ["xavier"])["xavier"])
            _ = try await store.client.query("UPDATE accounts SET lease_owner = 'b', lease_expires_at = now() + interval '1 minute'")
            let before = try await tables(store)
            // One confirmation would end the live: b asked since, and its answer is the one that counts.
            #expect(try await store.record(.offline, accountID: id, node: "a", offlineConfirmations: 1, pace: Self.pace,
                                           aliveRecheck: .seconds(15), fromLookup: true) == nil)
            #expect(try await tables(store) == before)
        }
    }

    @Test("a check_alive answer whose live's lease another node holds writes nothing; one under this node's lease run out does")
    func roomAnswerUnderAnotherNodesLease() async throws {
        try await TestDatabase.withStore { store in
            let id = try #require(try await LiveAnswerTests().startLives(store, ["xavier"])["xavier"])
            _ = try await store.client.query("""
                UPDATE lives SET alive_lease_owner = 'b', alive_lease_expires_at = now() + interval '1 minute' WHERE status = 'live'
                """)
            let before = try await tables(store)
            #expect(try await store.record(.roomGone("r1"), accountID: id, node: "a", offlineConfirmations: 1, pace: Self.pace,
                                           aliveRecheck: .seconds(15), fromLookup: false) == nil)
            #expect(try await tables(store) == before)

            // This node's own lease, run out but taken by nobody since: the answer is still its to write.
            _ = try await store.client.query("""
                UPDATE lives SET alive_lease_owner = 'a', alive_lease_expires_at = now() - interval '1 minute' WHERE status = 'live'
                """)
            let recorded = try await store.record(.roomGone("r1"), accountID: id, node: "a", offlineConfirmations: 2, pace: Self.pace,
                                                  aliveRecheck: .seconds(15), fromLookup: false)
            #expect(recorded != nil && recorded?.decision.end == nil)
            #expect(try await openLive(store, "xavier") == OpenLive(offlineStreak: 1, open: true))
        }
    }

    @Test("a node whose check_alive lease ran out and was taken counts no second 'gone' for the same moment, in one statement or in full")
    func expiredLeaseTakenByAnotherNode() async throws {
        try await TestDatabase.withStore { store in
            let id = try #require(try await LiveAnswerTests().startLives(store, ["xavier"])["xavier"])
            // Node a's lease runs out at once; node b takes the live and counts its "gone".
            let byA = try #require(try await store.claimLivesForAliveCheck(node: "a", limit: 10, lease: .zero, ahead: .seconds(60)).first)
            let byB = try #require(try await store.claimLivesForAliveCheck(node: "b", limit: 10, lease: .seconds(60), ahead: .seconds(60)).first)
            #expect(byA.liveID == byB.liveID)
            guard case .counted? = try await store.recordRoomGone(byB, node: "b", offlineConfirmations: 2) else {
                Issue.record("b's 'gone' was not counted")
                return
            }
            // a's answer, of the same moment, would be the second confirmation of one look: not written.
            #expect(try await store.recordRoomGone(byA, node: "a", offlineConfirmations: 2) == nil)
            #expect(try await store.record(.roomGone("r1"), accountID: id, node: "a", offlineConfirmations: 2, pace: Self.pace,
                                           aliveRecheck: .seconds(15), fromLookup: false) == nil)
            #expect(try await openLive(store, "xavier") == OpenLive(offlineStreak: 1, open: true))
        }
    }

    // MARK: Lock order

    @Test("check_alive's 'still live' for an account with a counted 'gone' waits for a lookup's record instead of deadlocking with it")
    func stillAliveWaitsForTheAccountFirst() async throws {
        try await TestDatabase.withStore { store in
            let id = try #require(try await LiveAnswerTests().startLives(store, ["xavier"])["xavier"])
            let live = try #require(try await LiveAnswerTests().claimLives(store)["xavier"])
            // One 'gone' counted: the 'still live' resets the streak, so it writes the account's row too.
            _ = try await store.client.query("UPDATE accounts SET offline_streak = 1 WHERE id = \(id)")
            let logger = Logger(label: "test")
            let batch = try await store.client.withTransaction(logger: logger) { connection -> Task<Void, any Error> in
                // A lookup's record: the account's row locked first…
                for try await _ in try await connection.query(
                    "SELECT id FROM accounts WHERE id = \(id) FOR UPDATE", logger: logger
                ).decode(Int64.self) {}
                let task = Task { try await store.recordStillAlive([live.liveID], node: "a", after: .seconds(5)) }
                do {
                    try await waitUntil("the 'still live' waits for a row this transaction holds") {
                        try await lockWaiters(connection, logger: logger) > 0
                    }
                    // …then its live, which a batch that locked the live before the account would hold:
                    // PostgreSQL would then abort one of the two transactions.
                    try await connection.query("UPDATE lives SET title = 'seen by the lookup' WHERE id = \(live.liveID)", logger: logger)
                } catch {
                    task.cancel()
                    throw error
                }
                return task
            }
            try await batch.value
            var after = [String]()
            for try await (streak, title, leaseFree) in try await store.client.query("""
                SELECT a.offline_streak, l.title, l.alive_lease_owner IS NULL FROM accounts a JOIN lives l ON l.account_id = a.id
                WHERE l.id = \(live.liveID)
                """).decode((Int, String, Bool).self) {
                after = ["streak \(streak)", title, leaseFree ? "alive lease free" : "alive lease held"]
            }
            // Both written: the lookup's, then the batch's.
            #expect(after == ["streak 0", "seen by the lookup", "alive lease free"])
        }
    }

    // MARK: Answers older than an end

    @Test("a 'live' asked for before its room's live ended starts no new live; one asked for after the end does")
    func staleLiveAnswerStartsNothing() async throws {
        try await TestDatabase.withStore { store in
            let id = try #require(try await LiveAnswerTests().startLives(store, ["xavier"])["xavier"])
            // The live in r1 ends: two "gone" from check_alive, each under a fresh claim.
            let first = try #require(try await LiveAnswerTests().claimLives(store)["xavier"])
            guard case .counted? = try await store.recordRoomGone(first, node: "a", offlineConfirmations: 2) else {
                Issue.record("the first 'gone' was not counted")
                return
            }
            let second = try #require(try await LiveAnswerTests().claimLives(store)["xavier"])
            guard case .ended? = try await store.recordRoomGone(second, node: "a", offlineConfirmations: 2) else {
                Issue.record("the second 'gone' did not end the live")
                return
            }
            // A lookup claimed again; its answer was asked for a minute ago, before the end.
            _ = try await store.client.query("UPDATE accounts SET lease_owner = 'a', lease_expires_at = now() + interval '1 minute'")
            let answer = Observation.live(LiveAnswerTests.room("r1"))
            let decision = LiveLifecycle.decide(DetectionState(openLive: nil, offlineStreak: 0, notFoundStreak: 0), answer,
                                                offlineConfirmations: 2)
            #expect(try await store.recordStart(decision, accountID: id, node: "a", pace: Self.pace, aliveRecheck: .seconds(15),
                                                answerAge: .seconds(60)) == nil)
            #expect(try await store.record(answer, accountID: id, node: "a", offlineConfirmations: 2, pace: Self.pace,
                                           aliveRecheck: .seconds(15), fromLookup: true, answerAge: .seconds(60)) == nil)
            #expect(try await lives(store) == ["r1 ended"])

            // Asked for after the end: the room live again is a live again.
            let recorded = try await store.record(answer, accountID: id, node: "a", offlineConfirmations: 2, pace: Self.pace,
                                                  aliveRecheck: .seconds(15), fromLookup: true, answerAge: .zero)
            #expect(recorded?.startedLiveID != nil)
            #expect(try await lives(store) == ["r1 ended", "r1 live"])
        }
    }

    // MARK: Helpers

    /// The id of the account's (only) live.
    func liveID(_ store: Store, _ name: String) async throws -> Int64 {
        for try await id in try await store.client.query("SELECT id FROM lives WHERE username = \(name)").decode(Int64.self) {
            return id
        }
        throw StoreTestError("no live for \(name)")
    }

    /// A live's status, end reason, end time and check_alive lease, as text.
    func liveState(_ store: Store, _ id: Int64) async throws -> [String] {
        for try await (status, reason, endedAt, aliveLeaseFree) in try await store.client.query("""
            SELECT status, coalesce(end_reason, ''), ended_at IS NOT NULL, alive_lease_owner IS NULL FROM lives WHERE id = \(id)
            """).decode((String, String, Bool, Bool).self) {
            return [status, reason, endedAt ? "ended at set" : "ended at unset", aliveLeaseFree ? "alive lease free" : "alive lease held"]
        }
        throw StoreTestError("no live \(id)")
    }

    struct OpenLive: Equatable {
        var offlineStreak: Int
        var open: Bool
    }

    /// The account's offline streak, and whether it has a live open.
    func openLive(_ store: Store, _ name: String) async throws -> OpenLive {
        for try await (streak, open) in try await store.client.query("""
            SELECT a.offline_streak, EXISTS (SELECT 1 FROM lives l WHERE l.account_id = a.id AND l.status = 'live')
            FROM accounts a WHERE a.username = \(name)
            """).decode((Int, Bool).self) {
            return OpenLive(offlineStreak: streak, open: open)
        }
        throw StoreTestError("no account \(name)")
    }

    /// Every live, as its room and status, oldest first.
    func lives(_ store: Store) async throws -> [String] {
        var lives = [String]()
        for try await (room, status) in try await store.client.query(
            "SELECT room_id, status FROM lives ORDER BY id"
        ).decode((String, String).self) {
            lives.append("\(room) \(status)")
        }
        return lives
    }

    /// Every row of accounts and lives as JSON, and the events by id and type: what an answer that
    /// writes nothing must leave as it was, times included.
    func tables(_ store: Store) async throws -> [String] {
        var rows = [String]()
        for try await row in try await store.client.query("""
            SELECT 'account ' || row_to_json(a)::text FROM accounts a
            UNION ALL SELECT 'live ' || row_to_json(l)::text FROM lives l
            UNION ALL SELECT 'event ' || e.id::text || ' ' || e.type FROM events e
            ORDER BY 1
            """).decode(String.self) {
            rows.append(row)
        }
        return rows
    }

    /// How many sessions wait for a lock this connection's transaction holds. The activity view is
    /// read once per transaction and kept until its end: the snapshot is dropped before each look.
    func lockWaiters(_ connection: PostgresConnection, logger: Logger) async throws -> Int {
        for try await _ in try await connection.query("SELECT pg_stat_clear_snapshot()", logger: logger) {}
        for try await count in try await connection.query("""
            SELECT count(*)::int8 FROM pg_stat_activity
            WHERE wait_event_type = 'Lock' AND pg_backend_pid() = ANY(pg_blocking_pids(pid))
            """, logger: logger).decode(Int64.self) {
            return Int(count)
        }
        return 0
    }

    /// Polls `condition` until it holds; throws once `timeout` has passed without it.
    func waitUntil(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while try await !condition() {
            guard ContinuousClock.now < deadline else { throw StoreTestError("timed out waiting until \(what)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}
