import Foundation
import PostgresNIO
import TTTDomain

/// Detection's use of the database: leases on accounts and open lives (several nodes may share one
/// database), and each observation applied with its events in one transaction.
extension Store {
    /// An account leased for a lookup, with its detection state as of the claim: while the lease
    /// holds, only this node's answers change it (check_alive touches accounts with an open live only).
    public struct ClaimedAccount: Sendable {
        public var id: Int64
        public var username: Username
        public var live: Bool
        public var offlineStreak: Int
        public var notFoundStreak: Int

        public init(id: Int64, username: Username, live: Bool = false, offlineStreak: Int = 0, notFoundStreak: Int = 0) {
            self.id = id
            self.username = username
            self.live = live
            self.offlineStreak = offlineStreak
            self.notFoundStreak = notFoundStreak
        }
    }

    /// A lookup answer that changes no live and writes no event (an idle account seen offline, not
    /// found, or not seen at all): only the account's row changes, so many are written in one statement.
    public struct QuietAnswer: Sendable, Equatable {
        public var accountID: Int64
        public var notFoundStreak: Int
        public var checkState: CheckState
        public var detail: String?

        public init(accountID: Int64, notFoundStreak: Int, checkState: CheckState, detail: String?) {
            self.accountID = accountID
            self.notFoundStreak = notFoundStreak
            self.checkState = checkState
            self.detail = detail
        }
    }

    public struct ClaimedLive: Sendable {
        public var liveID: Int64
        public var accountID: Int64
        public var username: Username
        public var roomID: String
    }

    /// How often an account can be checked: the cluster's budget spread by weight.
    public struct Pace: Sendable {
        public var target: Duration
        public var totalWeight: Double
        public var budgetPerSecond: Double

        public init(target: Duration, totalWeight: Double, budgetPerSecond: Double) {
            self.target = target
            self.totalWeight = totalWeight
            self.budgetPerSecond = budgetPerSecond
        }

        /// The time to the next check of an account of this weight: the target interval, stretched
        /// when the budget cannot keep it. Checking frequency ∝ √(rate of lives) minimises the mean
        /// detection delay for a fixed budget, which is why weights are square roots.
        public func interval(weight: Double) -> Double {
            let share = budgetPerSecond > 0 ? totalWeight / (budgetPerSecond * max(weight, 0.01)) : 3600
            return max(target.asSeconds, share)
        }

        /// How soon a live account found offline once is looked up again to confirm the end, in seconds.
        public var recheckSoon: Double { min(5, target.asSeconds) }
    }

    /// The share of its weight's lookups a live account gets: check_alive follows its live (and
    /// sees it end), so the budget goes to finding the next lives instead. The cluster's total
    /// weight counts live accounts at this share too, so that the budget is still spent in full.
    public static let liveLookupShare = 0.25

    /// Weight of an account from its history: √(lives in 30 days + 0.2 + 1 if it went live this week).
    public static func weight(livesIn30Days: Int, wentLiveThisWeek: Bool) -> Double {
        (Double(livesIn30Days) + 0.2 + (wentLiveThisWeek ? 1 : 0)).squareRoot()
    }

    // MARK: Nodes

    /// The run of a node last seen in the database: its token (nil once it stopped cleanly, or from
    /// a version without tokens), its last heartbeat, and how long ago that was on the database's clock.
    public struct NodeRun: Sendable, Equatable {
        public var token: String?
        public var heartbeat: Date
        public var age: Duration
    }

    public func nodeRun(_ nodeID: String) async throws(StoreError) -> NodeRun? {
        try await run("nodes.read") { client in
            for try await (token, heartbeat, age) in try await client.query("""
                SELECT run_token, heartbeat_at, extract(epoch FROM now() - heartbeat_at)::float8 FROM nodes WHERE node_id = \(nodeID)
                """).decode((String?, Date, Double).self) {
                return NodeRun(token: token, heartbeat: heartbeat, age: .milliseconds(Int64(max(0, age) * 1000)))
            }
            return nil
        }
    }

    /// A clean stop: the next run of this node need not wait to tell itself from a second one.
    public func nodeStopped(_ nodeID: String, token: String) async throws(StoreError) {
        try await run("nodes.stopped") { client in
            _ = try await client.query("UPDATE nodes SET run_token = NULL WHERE node_id = \(nodeID) AND run_token = \(token)")
        }
    }

    /// Registers this run of the node and frees the leases a previous run held (after a crash or kill -9).
    public func registerNode(_ nodeID: String, token: String, budgetPerSecond: Double) async throws(StoreError) {
        try await transaction("nodes.register") { connection in
            try await connection.query("""
                INSERT INTO nodes (node_id, budget_rps, run_token) VALUES (\(nodeID), \(budgetPerSecond), \(token))
                ON CONFLICT (node_id) DO UPDATE SET budget_rps = EXCLUDED.budget_rps, heartbeat_at = now(), started_at = now(),
                    run_token = EXCLUDED.run_token
                """, logger: self.logger)
            // The accounts in id order, then the lives, as every statement that writes both locks them.
            for try await _ in try await connection.query(
                "SELECT id FROM accounts WHERE lease_owner = \(nodeID) ORDER BY id FOR NO KEY UPDATE", logger: self.logger
            ).decode(Int64.self) {}
            try await connection.query(
                "UPDATE accounts SET lease_owner = NULL, lease_expires_at = NULL WHERE lease_owner = \(nodeID)", logger: self.logger)
            try await connection.query(
                "UPDATE lives SET alive_lease_owner = NULL, alive_lease_expires_at = NULL WHERE alive_lease_owner = \(nodeID)",
                logger: self.logger)
        }
    }

    public struct Heartbeat: Sendable {
        /// The cluster's budget (nodes alive).
        public var budget: Double
        /// The sum of the accounts' weights.
        public var totalWeight: Double
        public var accounts: Int
        public var openLives: Int
        /// Another run wrote its token on this node's row since this run's last beat: a second tttd
        /// with the same node id is running.
        public var otherRun: Bool
    }

    /// Heartbeat: this run's token on the node's row, and the figures the pace is planned from.
    public func heartbeat(_ nodeID: String, token: String, budgetPerSecond: Double) async throws(StoreError) -> Heartbeat {
        try await run("nodes.heartbeat") { client in
            // The subquery in the final SELECT sees the row as it was before this statement.
            let rows = try await client.query("""
                WITH beat AS (
                    INSERT INTO nodes (node_id, budget_rps, run_token) VALUES (\(nodeID), \(budgetPerSecond), \(token))
                    ON CONFLICT (node_id) DO UPDATE SET budget_rps = EXCLUDED.budget_rps, heartbeat_at = now(),
                        run_token = EXCLUDED.run_token
                    RETURNING budget_rps
                )
                SELECT (SELECT budget_rps FROM beat)
                       + coalesce((SELECT sum(budget_rps) FROM nodes WHERE node_id <> \(nodeID) AND heartbeat_at > now() - interval '90 seconds'), 0),
                       coalesce((SELECT sum(CASE WHEN live THEN weight * \(Self.liveLookupShare) ELSE weight END) FROM accounts), 0),
                       (SELECT count(*) FROM accounts)::int8,
                       (SELECT count(*) FROM lives WHERE status = 'live')::int8,
                       coalesce((SELECT run_token <> \(token) FROM nodes WHERE node_id = \(nodeID)), false)
                """)
            for try await (budget, weight, count, open, other) in rows.decode((Double, Double, Int64, Int64, Bool).self) {
                return Heartbeat(budget: budget, totalWeight: weight, accounts: Int(count), openLives: Int(open), otherRun: other)
            }
            return Heartbeat(budget: budgetPerSecond, totalWeight: 0, accounts: 0, openLives: 0, otherRun: false)
        }
    }

    // MARK: Claims

    /// Leases open lives whose batched check_alive is due, or will be within `ahead`: taking lives a
    /// little early fills each request (up to 50 rooms) instead of spending one on each live.
    public func claimLivesForAliveCheck(node: String, limit: Int, lease: Duration, ahead: Duration) async throws(StoreError) -> [ClaimedLive] {
        let seconds = lease.asSeconds
        let early = ahead.asSeconds
        return try await run("lives.claim") { client in
            let rows = try await client.query("""
                WITH due AS (
                    SELECT id FROM lives
                    WHERE status = 'live' AND account_id IS NOT NULL
                      AND next_alive_check_at <= now() + make_interval(secs => \(early))
                      AND (alive_lease_expires_at IS NULL OR alive_lease_expires_at < now())
                    ORDER BY next_alive_check_at
                    LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE lives l SET alive_lease_owner = \(node), alive_lease_expires_at = now() + make_interval(secs => \(seconds))
                FROM due WHERE l.id = due.id
                RETURNING l.id, l.account_id, l.username, l.room_id
                """)
            var lives = [ClaimedLive]()
            for try await (id, account, name, room) in rows.decode((Int64, Int64, String, String).self) {
                lives.append(ClaimedLive(liveID: id, accountID: account, username: Username(trusted: name), roomID: room))
            }
            return lives
        }
    }

    /// Returns a claimed live to the pool after a check_alive that could not be made, due again in `after`.
    public func releaseLives(_ ids: [Int64], node: String, after: Duration) async throws(StoreError) {
        let seconds = after.asSeconds
        try await run("lives.release") { client in
            _ = try await client.query("""
                UPDATE lives SET alive_lease_owner = NULL, alive_lease_expires_at = NULL,
                    next_alive_check_at = now() + make_interval(secs => \(seconds))
                WHERE id = ANY(\(ids)::int8[]) AND alive_lease_owner = \(node)
                """)
        }
    }

    /// Writes quiet lookup answers and leases the accounts due next, in one statement: a node
    /// checking its accounts one after the other writes the answers it has and takes the next ones
    /// in a single round trip.
    ///
    /// The answers: each account's state, its weight from its history, its next check (the pace,
    /// with ±10 % jitter) and its lease released. An answer is written only while this node still
    /// holds the account's lease, run out or not: once another node has taken the account (or this
    /// node took it again and wrote one answer already), the answer comes from a row that may have
    /// changed since, and writing it could undo a newer answer (count a "not found" streak down).
    /// An account that went live meanwhile is left alone too (its live answer was recorded in full).
    ///
    /// The claim: up to `limit` accounts due now or within `ahead`, most overdue first; SKIP LOCKED
    /// and the lease keep two nodes from checking one account in the same round. The accounts
    /// answered here are not among them.
    public func recordAndClaim(_ answers: [QuietAnswer], pace: Pace, node: String, limit: Int, lease: Duration,
                               ahead: Duration = .zero) async throws(StoreError) -> [ClaimedAccount] {
        let ids = answers.map(\.accountID)
        let notFound = answers.map { Int32($0.notFoundStreak) }
        let states = answers.map(\.checkState.rawValue)
        let details = answers.map { $0.detail ?? "" }
        let leaseSeconds = lease.asSeconds
        let early = ahead.asSeconds
        return try await run("detection.record_and_claim") { client in
            let rows = try await client.query("""
                WITH recorded AS (
                    UPDATE accounts a SET
                        offline_streak = 0, not_found_streak = q.not_found, live = false,
                        check_state = q.state, check_detail = nullif(q.detail, ''), last_checked_at = now(),
                        weight = h.weight,
                        next_check_at = \(unescaped: Self.nextLookupSQL(pace, weight: "h.weight")),
                        lease_owner = NULL, lease_expires_at = NULL
                    FROM unnest(\(ids)::int8[], \(notFound)::int4[], \(states)::text[], \(details)::text[])
                             AS q(id, not_found, state, detail)
                         CROSS JOIN LATERAL (
                             SELECT \(unescaped: Self.weightSQL(starting: false)) AS weight
                             FROM lives x WHERE x.account_id = q.id) h
                    WHERE a.id = q.id AND NOT a.live AND a.lease_owner = \(node)
                ),
                due AS (
                    SELECT id FROM accounts
                    WHERE next_check_at <= now() + make_interval(secs => \(early))
                      AND (lease_expires_at IS NULL OR lease_expires_at < now())
                      AND id <> ALL(\(ids)::int8[])
                    ORDER BY next_check_at
                    LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE accounts a SET lease_owner = \(node), lease_expires_at = now() + make_interval(secs => \(leaseSeconds))
                FROM due WHERE a.id = due.id
                RETURNING a.id, a.username, a.next_check_at, a.live, a.offline_streak, a.not_found_streak
                """)
            var claimed = [(ClaimedAccount, Date)]()
            for try await (id, name, due, live, offline, notFound) in rows.decode((Int64, String, Date, Bool, Int, Int).self) {
                claimed.append((ClaimedAccount(id: id, username: Username(trusted: name), live: live,
                                               offlineStreak: offline, notFoundStreak: notFound), due))
            }
            return claimed.sorted { $0.1 < $1.1 }.map(\.0)
        }
    }

    /// Writes quiet lookup answers alone, when no claim came to carry them (see `recordAndClaim`).
    public func recordQuiet(_ answers: [QuietAnswer], pace: Pace, node: String) async throws(StoreError) {
        guard !answers.isEmpty else { return }
        _ = try await recordAndClaim(answers, pace: pace, node: node, limit: 0, lease: .zero)
    }

    // MARK: Observations

    /// check_alive said these rooms are still live: release their leases, set their next check, and
    /// reset their accounts' offline streaks, in one statement. Lives that ended meanwhile are left.
    public func recordStillAlive(_ liveIDs: [Int64], node: String, after: Duration) async throws(StoreError) {
        guard !liveIDs.isEmpty else { return }
        let seconds = after.asSeconds
        try await run("detection.record_alive") { client in
            // The accounts' rows first (in id order, as every statement that locks several takes
            // them), then the lives, as `record` and `recordRoomGone` lock an account and then its
            // live: lives first, a batch and a lookup of one of its accounts with an offline streak
            // would each hold the row the other waits for (a deadlock, the batch lost). The count
            // is an init plan: PostgreSQL runs it, locking every account, before the lives' scan.
            _ = try await client.query("""
                WITH locked AS (
                    SELECT a.id FROM accounts a
                    WHERE a.id IN (SELECT account_id FROM lives
                                   WHERE id = ANY(\(liveIDs)::int8[]) AND status = 'live' AND alive_lease_owner = \(node))
                    ORDER BY a.id
                    FOR NO KEY UPDATE
                ), still AS (
                    UPDATE lives SET alive_lease_owner = NULL, alive_lease_expires_at = NULL,
                        next_alive_check_at = now() + make_interval(secs => \(seconds))
                    WHERE id = ANY(\(liveIDs)::int8[]) AND status = 'live' AND alive_lease_owner = \(node)
                      AND (SELECT count(*) FROM locked) >= 0
                    RETURNING account_id
                )
                UPDATE accounts SET offline_streak = 0
                WHERE id IN (SELECT account_id FROM still) AND offline_streak <> 0
                """)
        }
    }

    /// When check_alive looks again at a live it saw gone once, to confirm the end.
    static let aliveRecheckSoon = Duration.seconds(2)

    /// A lookup found the account's live still on in the same room, the usual answer while
    /// check_alive follows it: the live's title, viewers and stream, and the account's check (as
    /// `record` writes them), in one statement instead of a transaction of five. False, with
    /// nothing written, when the account has no live open in that room any more (it ended or
    /// changed since the claim): the caller records the answer in full.
    public func recordStillLive(_ live: ObservedLive, accountID: Int64, node: String, pace: Pace) async throws(StoreError) -> Bool {
        let detail = LiveLifecycle.liveDetail(live)
        return try await run("detection.record_still_live") { client in
            // The account's row first, as `record` locks it, then the live's.
            let rows = try await client.query("""
                WITH account AS (
                    UPDATE accounts a SET
                        offline_streak = 0, not_found_streak = 0, check_state = 'live', check_detail = \(detail)::text,
                        last_checked_at = now(), weight = h.weight,
                        next_check_at = \(unescaped: Self.nextLookupSQL(pace, weight: "h.weight * \(Self.liveLookupShare)")),
                        lease_owner = CASE WHEN a.lease_owner = \(node) THEN NULL ELSE a.lease_owner END,
                        lease_expires_at = CASE WHEN a.lease_owner = \(node) THEN NULL ELSE a.lease_expires_at END
                    FROM (SELECT \(unescaped: Self.weightSQL(starting: false)) AS weight
                          FROM lives x WHERE x.account_id = \(accountID)) h
                    WHERE a.id = \(accountID) AND a.live AND a.room_id = \(live.roomID)
                      AND EXISTS (SELECT 1 FROM lives l WHERE l.account_id = a.id AND l.status = 'live' AND l.room_id = \(live.roomID))
                    RETURNING a.id
                )
                UPDATE lives l SET title = coalesce(\(live.title)::text, l.title),
                    peak_viewers = greatest(coalesce(l.peak_viewers, 0), coalesce(\(live.viewers)::int4, 0)),
                    stream_url = coalesce(\(live.streamURL)::text, l.stream_url), restricted = \(live.restricted)
                FROM account WHERE l.account_id = account.id AND l.status = 'live' AND l.room_id = \(live.roomID)
                RETURNING l.id
                """)
            var written = false
            for try await _ in rows.decode(Int64.self) { written = true }
            return written
        }
    }

    /// A lookup found a live on an account that had none open when claimed (`decision`, made from
    /// that state, starts it): the live, its `live_started` event (NOTIFY on commit) and the
    /// account's check, as `record` writes them, in one statement instead of a transaction of six.
    /// Nil, with nothing written, when the account has a live open since: the caller records the
    /// answer in full.
    public func recordStart(_ decision: DetectionDecision, accountID: Int64, node: String, pace: Pace,
                            aliveRecheck: Duration, answerAge: Duration = .zero) async throws(StoreError) -> Recorded? {
        guard let live = decision.start, decision.end == nil else { return nil }
        return try await run("detection.record_start") { client in
            // The account's row first, as `record` locks it; the unique index on open lives
            // stops a second node that saw the same live (its statement fails, its full record
            // then finds this live open).
            let rows = try await client.query("""
                WITH account AS (
                    UPDATE accounts a SET
                        offline_streak = \(decision.offlineStreak), not_found_streak = \(decision.notFoundStreak), live = true,
                        check_state = \(decision.checkState?.rawValue ?? CheckState.live.rawValue), check_detail = \(decision.detail)::text,
                        last_checked_at = now(), room_id = \(live.roomID), weight = h.weight,
                        next_check_at = \(unescaped: Self.nextLookupSQL(pace, weight: "h.weight * \(Self.liveLookupShare)")),
                        lease_owner = CASE WHEN a.lease_owner = \(node) THEN NULL ELSE a.lease_owner END,
                        lease_expires_at = CASE WHEN a.lease_owner = \(node) THEN NULL ELSE a.lease_expires_at END
                    FROM (SELECT \(unescaped: Self.weightSQL(starting: true)) AS weight
                          FROM lives x WHERE x.account_id = \(accountID)) h
                    WHERE a.id = \(accountID) AND NOT a.live
                      AND NOT EXISTS (SELECT 1 FROM lives l WHERE l.account_id = a.id AND l.status = 'live')
                      -- An answer asked for before this room's live ended is no new live in it.
                      AND NOT EXISTS (SELECT 1 FROM lives s WHERE s.account_id = a.id AND s.room_id = \(live.roomID)
                                      AND s.status = 'ended' AND s.ended_at > now() - make_interval(secs => \(answerAge.asSeconds)))
                    RETURNING a.id, a.username
                ), started AS (
                    INSERT INTO lives (account_id, username, room_id, title, started_at, peak_viewers, status, restricted,
                                       stream_url, next_alive_check_at)
                    SELECT id, username, \(live.roomID), \(live.title)::text, now(), \(live.viewers)::int4, 'live', \(live.restricted),
                           \(live.streamURL)::text, now() + make_interval(secs => \(aliveRecheck.asSeconds))
                    FROM account
                    RETURNING id, username, room_id, title, restricted
                ), event AS (
                    \(unescaped: Self.liveEventInsert("live_started", from: "started", reason: nil))
                )
                SELECT started.id, event.id, pg_notify('tttd_events', event.id::text || ' ' || event.type) FROM started, event
                """)
            for try await (liveID, eventID, _) in rows.decode((Int64, Int64, String).self) {
                return Recorded(decision: decision, startedLiveID: liveID, eventIDs: [eventID])
            }
            return nil
        }
    }

    /// What `recordRoomGone` or `recordLookupOffline` wrote.
    public enum OfflineCounted: Sendable {
        /// One more offline answer counted; the end waits for more.
        case counted
        /// The end confirmed: the live ended, with its `live_ended` event.
        case ended(Recorded)
    }

    /// check_alive found a live's room gone: as `record` writes it, in one statement instead of a
    /// transaction of five or six — the account's offline streak counted, its next lookup due now
    /// and the live's next check_alive soon; or, when that makes `offlineConfirmations`, the live
    /// ended with its `live_ended` event (NOTIFY on commit). Nil, with nothing written, when the
    /// live is not open in that room under this node's check_alive lease any more: the caller
    /// records the answer in full.
    public func recordRoomGone(_ live: ClaimedLive, node: String, offlineConfirmations: Int) async throws(StoreError) -> OfflineCounted? {
        let soon = Self.aliveRecheckSoon.asSeconds
        let confirmations = max(1, offlineConfirmations)
        let ended = try await run("detection.record_room_gone") { client -> (live: Bool, eventID: Int64?)? in
            let rows = try await client.query("""
                WITH account AS (
                    UPDATE accounts a SET
                        offline_streak = CASE WHEN a.offline_streak + 1 >= \(confirmations) THEN 0 ELSE a.offline_streak + 1 END,
                        live = a.offline_streak + 1 < \(confirmations),
                        next_check_at = CASE WHEN a.offline_streak + 1 < \(confirmations) THEN now() ELSE a.next_check_at END,
                        weight = h.weight
                    FROM (SELECT \(unescaped: Self.weightSQL(starting: false)) AS weight
                          FROM lives x WHERE x.account_id = \(live.accountID)) h
                    WHERE a.id = \(live.accountID) AND a.live AND a.room_id = \(live.roomID)
                      AND EXISTS (SELECT 1 FROM lives l WHERE l.id = \(live.liveID) AND l.account_id = a.id AND l.status = 'live'
                                  AND l.room_id = \(live.roomID) AND l.alive_lease_owner = \(node))
                    RETURNING a.id, a.live
                ), rechecked AS (
                    UPDATE lives l SET alive_lease_owner = NULL, alive_lease_expires_at = NULL,
                        next_alive_check_at = now() + make_interval(secs => \(soon))
                    FROM account WHERE l.id = \(live.liveID) AND account.live
                    RETURNING l.id
                ), ended AS (
                    UPDATE lives l SET status = 'ended', ended_at = now(), end_reason = \(LiveEndReason.offline.rawValue),
                        alive_lease_owner = NULL, alive_lease_expires_at = NULL
                    FROM account WHERE l.id = \(live.liveID) AND NOT account.live
                    RETURNING l.id, l.username, l.room_id, l.title, l.restricted
                ), event AS (
                    \(unescaped: Self.liveEventInsert("live_ended", from: "ended", reason: .offline))
                )
                SELECT account.live, event.id,
                       CASE WHEN event.id IS NOT NULL THEN pg_notify('tttd_events', event.id::text || ' ' || event.type) END
                FROM account LEFT JOIN event ON true
                """)
            for try await (stillLive, eventID, _) in rows.decode((Bool, Int64?, String?).self) {
                return (stillLive, eventID)
            }
            return nil
        }
        guard let ended else { return nil }
        if ended.live { return .counted }
        return Self.confirmedEnd(of: .init(id: live.liveID, roomID: live.roomID), by: .roomGone(live.roomID),
                                 confirmations: confirmations, eventID: ended.eventID)
    }

    /// What a one-statement "offline" that reached `confirmations` reports: the decision the full
    /// record would have made from the streak one short of them. `open`: the live it ended, nil
    /// when another writer ended it first (and wrote its event).
    private static func confirmedEnd(of open: DetectionState.OpenLive?, by observation: Observation,
                                     confirmations: Int, eventID: Int64?) -> OfflineCounted {
        let state = DetectionState(openLive: open, offlineStreak: confirmations - 1, notFoundStreak: 0)
        let decision = LiveLifecycle.decide(state, observation, offlineConfirmations: confirmations)
        return .ended(Recorded(decision: decision, startedLiveID: nil, eventIDs: eventID.map { [$0] } ?? []))
    }

    /// A lookup found offline an account whose live is open (most often confirming an end
    /// check_alive counted first): as `record` writes it, in one statement instead of a transaction
    /// of six to eight — the offline streak counted and the next lookup due soon; or, when that
    /// makes `offlineConfirmations`, the live ended with its `live_ended` event (NOTIFY on commit)
    /// and the account's next lookup paced by its weight. Nil, with nothing written, when this node
    /// no longer holds the account's lease or the account has no live open in its room any more:
    /// the caller records the answer in full.
    public func recordLookupOffline(accountID: Int64, node: String, pace: Pace,
                                    offlineConfirmations: Int) async throws(StoreError) -> OfflineCounted? {
        let confirmations = max(1, offlineConfirmations)
        let soon = pace.recheckSoon
        let ended = try await run("detection.record_lookup_offline") { client -> (live: Bool, ended: DetectionState.OpenLive?, eventID: Int64?)? in
            // The account's row first, then its live, as `record` locks them. Should the row change
            // while this waits for its lock, PostgreSQL checks the conditions on the account again
            // but sees the lives as they were: the room the account names must still be the open live's.
            let rows = try await client.query("""
                WITH account AS (
                    UPDATE accounts a SET
                        offline_streak = CASE WHEN a.offline_streak + 1 >= \(confirmations) THEN 0 ELSE a.offline_streak + 1 END,
                        not_found_streak = 0, live = a.offline_streak + 1 < \(confirmations),
                        check_state = \(CheckState.offline.rawValue), check_detail = NULL, last_checked_at = now(), weight = h.weight,
                        next_check_at = CASE WHEN a.offline_streak + 1 < \(confirmations) THEN now() + make_interval(secs => \(soon))
                                             ELSE \(unescaped: Self.nextLookupSQL(pace, weight: "h.weight")) END,
                        lease_owner = NULL, lease_expires_at = NULL
                    FROM (SELECT \(unescaped: Self.weightSQL(starting: false)) AS weight
                          FROM lives x WHERE x.account_id = \(accountID)) h
                    WHERE a.id = \(accountID) AND a.live AND a.lease_owner = \(node)
                      AND EXISTS (SELECT 1 FROM lives l WHERE l.account_id = a.id AND l.status = 'live' AND l.room_id = a.room_id)
                    RETURNING a.id, a.live, a.room_id
                ), ended AS (
                    UPDATE lives l SET status = 'ended', ended_at = now(), end_reason = \(LiveEndReason.offline.rawValue),
                        alive_lease_owner = NULL, alive_lease_expires_at = NULL
                    FROM account WHERE l.account_id = account.id AND l.status = 'live' AND l.room_id = account.room_id
                      AND NOT account.live
                    RETURNING l.id, l.username, l.room_id, l.title, l.restricted
                ), event AS (
                    \(unescaped: Self.liveEventInsert("live_ended", from: "ended", reason: .offline))
                )
                SELECT account.live, ended.id, ended.room_id, event.id,
                       CASE WHEN event.id IS NOT NULL THEN pg_notify('tttd_events', event.id::text || ' ' || event.type) END
                FROM account LEFT JOIN ended ON true LEFT JOIN event ON true
                """)
            for try await (stillLive, liveID, roomID, eventID, _) in rows.decode((Bool, Int64?, String?, Int64?, String?).self) {
                let ended = liveID.flatMap { id in roomID.map { DetectionState.OpenLive(id: id, roomID: $0) } }
                return (stillLive, ended, eventID)
            }
            return nil
        }
        guard let ended else { return nil }
        if ended.live { return .counted }
        return Self.confirmedEnd(of: ended.ended, by: .offline, confirmations: confirmations, eventID: ended.eventID)
    }

    public struct Recorded: Sendable {
        public var decision: DetectionDecision
        public var startedLiveID: Int64?
        /// The events written, in order (ids), for logs.
        public var eventIDs: [Int64]
    }

    /// Applies one observation of an account: the lifecycle decision, the account's state, the lives
    /// and their events commit together; NOTIFY wakes followers on commit. `aliveRecheck` is when the
    /// open live's next check_alive is due.
    /// `answerAge`: how long ago the answer was asked for (on the asking node's clock): a "live"
    /// asked for before its room's live ended is that live, not a new one, and is not written.
    public func record(
        _ observation: Observation, accountID: Int64, node: String, offlineConfirmations: Int,
        pace: Pace, aliveRecheck: Duration, fromLookup: Bool, answerAge: Duration = .zero
    ) async throws(StoreError) -> Recorded? {
        let logger = self.logger
        return try await transaction("detection.record") { connection -> Recorded? in
            // The account's row first, then its open live in a statement of its own: a read that
            // waited for the row lock sees the account as committed meanwhile, but a live joined to
            // it as it was before the wait (a live another answer has just ended would be ended again).
            let accountRows = try await connection.query("""
                SELECT username, offline_streak, not_found_streak, lease_owner IS NOT DISTINCT FROM \(node)
                FROM accounts WHERE id = \(accountID)
                FOR UPDATE
                """, logger: logger)
            var account: (String, Int, Int, Bool)?
            for try await row in accountRows.decode((String, Int, Int, Bool).self) { account = row }
            // The account was removed while it was being checked: nothing to record.
            guard let (username, offlineStreak, notFoundStreak, holdsLease) = account else { return nil }
            let liveRows = try await connection.query("""
                SELECT l.id, l.room_id, l.alive_lease_owner IS NOT DISTINCT FROM \(node),
                       (SELECT count(*) FROM lives x WHERE x.account_id = \(accountID) AND x.started_at > now() - interval '30 days')::int8,
                       coalesce((SELECT max(x.started_at) > now() - interval '7 days' FROM lives x WHERE x.account_id = \(accountID)), false)
                FROM (VALUES (1)) one LEFT JOIN lives l ON l.account_id = \(accountID) AND l.status = 'live'
                """, logger: logger)
            var live: (Int64?, String?, Bool?, Int64, Bool)?
            for try await row in liveRows.decode((Int64?, String?, Bool?, Int64, Bool).self) { live = row }
            guard let (openID, openRoom, holdsAliveLease, recentLives, thisWeek) = live else { return nil }
            // An answer is written only under the lease it was asked under: a lookup under the
            // account's, a room's answer under its live's check_alive lease (expired or not, as long
            // as no other node took it since). Otherwise another node has asked meanwhile, and two
            // answers of one moment would count twice towards an end.
            guard fromLookup ? holdsLease : holdsAliveLease == true else { return nil }
            let state = DetectionState(
                openLive: openID.flatMap { id in openRoom.map { DetectionState.OpenLive(id: id, roomID: $0) } },
                offlineStreak: offlineStreak, notFoundStreak: notFoundStreak)
            let decision = LiveLifecycle.decide(state, observation, offlineConfirmations: offlineConfirmations)
            if let start = decision.start, answerAge > .zero {
                let ended = try await connection.query("""
                    SELECT EXISTS (SELECT 1 FROM lives WHERE account_id = \(accountID) AND room_id = \(start.roomID) AND status = 'ended'
                                   AND ended_at > now() - make_interval(secs => \(answerAge.asSeconds)))
                    """, logger: logger)
                for try await endedSince in ended.decode(Bool.self) where endedSince { return nil }
            }
            var events = [Int64]()
            var startedID: Int64?

            if let end = decision.end {
                let ended = try await connection.query("""
                    UPDATE lives SET status = 'ended', ended_at = now(), end_reason = \(end.reason.rawValue),
                        alive_lease_owner = NULL, alive_lease_expires_at = NULL
                    WHERE id = \(end.id) AND status = 'live'
                    RETURNING id
                    """, logger: logger)
                var endedNow = false
                for try await _ in ended.decode(Int64.self) { endedNow = true }
                // One live_ended for each live, whatever raced to end it.
                if endedNow {
                    events.append(try await Self.insertLiveEvent(connection, type: "live_ended", liveID: end.id, reason: end.reason, logger: logger))
                }
            }
            if let start = decision.start {
                let inserted = try await connection.query("""
                    INSERT INTO lives (account_id, username, room_id, title, started_at, peak_viewers, status, restricted, stream_url,
                                       next_alive_check_at)
                    VALUES (\(accountID), \(username), \(start.roomID), \(start.title)::text, now(), \(start.viewers)::int4, 'live',
                            \(start.restricted), \(start.streamURL)::text, now() + make_interval(secs => \(aliveRecheck.asSeconds)))
                    RETURNING id
                    """, logger: logger)
                for try await id in inserted.decode(Int64.self) { startedID = id }
                if let startedID {
                    events.append(try await Self.insertLiveEvent(connection, type: "live_started", liveID: startedID, reason: nil, logger: logger))
                }
            }
            if let refresh = decision.refresh, let openID {
                try await connection.query("""
                    UPDATE lives SET title = coalesce(\(refresh.title)::text, title),
                        peak_viewers = greatest(coalesce(peak_viewers, 0), coalesce(\(refresh.viewers)::int4, 0)),
                        stream_url = coalesce(\(refresh.streamURL)::text, stream_url), restricted = \(refresh.restricted)
                    WHERE id = \(openID)
                    """, logger: logger)
            }
            if observation.isAliveAnswer, let openID, decision.end == nil {
                let next = decision.recheckSoon ? Self.aliveRecheckSoon : aliveRecheck
                try await connection.query("""
                    UPDATE lives SET alive_lease_owner = NULL, alive_lease_expires_at = NULL,
                        next_alive_check_at = now() + make_interval(secs => \(next.asSeconds))
                    WHERE id = \(openID)
                    """, logger: logger)
            }

            let liveNow = decision.start != nil || (openID != nil && decision.end == nil)
            let weight = Self.weight(livesIn30Days: Int(recentLives) + (decision.start == nil ? 0 : 1),
                                     wentLiveThisWeek: thisWeek || decision.start != nil)
            // A lookup sets the next lookup; an answer about a room only touches the account's state.
            // A live account is followed by check_alive; its lookups (title, viewers) can be rarer.
            let lookupWeight = liveNow ? weight * Self.liveLookupShare : weight
            let nextCheck: Double? = fromLookup
                ? (decision.recheckSoon ? pace.recheckSoon : pace.interval(weight: lookupWeight) * Double.random(in: 0.9...1.1))
                : (decision.recheckSoon ? 0 : nil)
            try await connection.query("""
                UPDATE accounts SET
                    offline_streak = \(decision.offlineStreak), not_found_streak = \(decision.notFoundStreak),
                    live = \(liveNow),
                    check_state = coalesce(\(decision.checkState?.rawValue)::text, check_state),
                    check_detail = CASE WHEN \(decision.checkState?.rawValue)::text IS NULL THEN check_detail
                                        ELSE \(decision.detail)::text END,
                    last_checked_at = CASE WHEN \(fromLookup) THEN now() ELSE last_checked_at END,
                    room_id = coalesce(\(decision.start?.roomID)::text, room_id),
                    weight = \(weight),
                    next_check_at = CASE WHEN \(nextCheck)::float8 IS NULL THEN next_check_at
                                         ELSE now() + make_interval(secs => \(nextCheck ?? 0)) END,
                    lease_owner = CASE WHEN \(fromLookup) AND lease_owner = \(node) THEN NULL ELSE lease_owner END,
                    lease_expires_at = CASE WHEN \(fromLookup) AND lease_owner = \(node) THEN NULL ELSE lease_expires_at END
                WHERE id = \(accountID)
                """, logger: logger)
            return Recorded(decision: decision, startedLiveID: startedID, eventIDs: events)
        }
    }

    /// A live event whose payload has the keys of INTERFACES.md (`live_id`, `username`, `room_id`, `title`, `at`).
    static func insertLiveEvent(_ connection: PostgresConnection, type: String, liveID: Int64, reason: LiveEndReason?,
                                logger: Logger) async throws -> Int64 {
        let rows = try await connection.query("""
            WITH ev AS (
                INSERT INTO events (type, live_id, username, payload)
                SELECT \(type), l.id, l.username, \(unescaped: livePayload(type, reason: reason))
                FROM lives l WHERE l.id = \(liveID)
                RETURNING id, type
            )
            SELECT id, pg_notify('tttd_events', id::text || ' ' || type) FROM ev
            """, logger: logger)
        for try await (id, _) in rows.decode((Int64, String).self) { return id }
        throw StoreError.failed("live \(liveID) vanished while writing its event")
    }

    /// Inserts a live event for each row of `rows` (a statement's name for the lives it wrote,
    /// as `livePayload` reads them), returning the events' ids and types for NOTIFY.
    static func liveEventInsert(_ type: String, from rows: String, reason: LiveEndReason?) -> String {
        """
        INSERT INTO events (type, live_id, username, payload)
        SELECT '\(type)', l.id, l.username, \(livePayload(type, reason: reason))
        FROM \(rows) l
        RETURNING id, type
        """
    }

    /// The payload of a live event, from `l`: a row of lives, or what a statement that wrote one
    /// returned (id, username, room_id, title, restricted). The type and reason are tttd's own
    /// names, written as literals.
    static func livePayload(_ type: String, reason: LiveEndReason?) -> String {
        let reason = reason.map { "'\($0.rawValue)'" } ?? "NULL"
        return """
            jsonb_strip_nulls(jsonb_build_object(
                'type', '\(type)'::text, 'live_id', l.id, 'username', l.username, 'room_id', l.room_id,
                'title', l.title, 'reason', \(reason)::text, 'restricted', CASE WHEN l.restricted THEN true END,
                'at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')))
            || jsonb_build_object('title', l.title)
            """
    }
}

extension Store {
    /// An account's weight from its lives (`x`, the account's rows of lives), as `Store.weight`
    /// computes it; `starting`: counting the live the same statement starts.
    static func weightSQL(starting: Bool) -> String {
        starting
            ? "sqrt(count(*) FILTER (WHERE x.started_at > now() - interval '30 days') + 1 + 0.2 + 1)"
            : """
              sqrt(count(*) FILTER (WHERE x.started_at > now() - interval '30 days') + 0.2
                   + CASE WHEN max(x.started_at) > now() - interval '7 days' THEN 1 ELSE 0 END)
              """
    }

    /// When an account of `weight` (an SQL expression) is looked up next: `Pace.interval`, ±10 % at random.
    static func nextLookupSQL(_ pace: Pace, weight: String) -> String {
        let target = pace.target.asSeconds
        return """
            now() + make_interval(secs =>
                CASE WHEN \(pace.budgetPerSecond) > 0
                     THEN greatest(\(target), \(pace.totalWeight) / (\(pace.budgetPerSecond) * greatest(\(weight), 0.01)))
                     ELSE greatest(\(target), 3600) END * (0.9 + 0.2 * random()))
            """
    }
}

extension Observation {
    var isAliveAnswer: Bool {
        switch self {
        case .roomAlive, .roomGone: return true
        default: return false
        }
    }
}
