import Foundation
import PostgresNIO
import TTTDomain

extension Store {
    public struct Counts: Sendable, Equatable {
        public var accounts: Int
        public var livesActive: Int
        /// Windows waiting for the analyzer (all nodes).
        public var analysisBacklog: Int
        /// Deliveries not yet sent nor given up (all channels).
        public var deliveriesPending: Int

        public init(accounts: Int, livesActive: Int, analysisBacklog: Int = 0, deliveriesPending: Int = 0) {
            self.accounts = accounts
            self.livesActive = livesActive
            self.analysisBacklog = analysisBacklog
            self.deliveriesPending = deliveriesPending
        }
    }

    public func counts() async throws(StoreError) -> Counts {
        try await run("counts") { client in
            let rows = try await client.query("""
                SELECT (SELECT count(*) FROM accounts)::int8, (SELECT count(*) FROM lives WHERE status = 'live')::int8,
                       (SELECT count(*) FROM transcripts WHERE analysis_state = 'pending')::int8,
                       (SELECT count(*) FROM deliveries WHERE state = 'pending')::int8
                """)
            for try await (accounts, lives, pending, deliveries) in rows.decode((Int64, Int64, Int64, Int64).self) {
                return Counts(accounts: Int(accounts), livesActive: Int(lives), analysisBacklog: Int(pending),
                              deliveriesPending: Int(deliveries))
            }
            return Counts(accounts: 0, livesActive: 0)
        }
    }

    /// Adds the accounts (labels are merged into those already watched); the `account_added` events
    /// commit with them. Returns which were new and which were already there.
    public func addAccounts(_ usernames: [Username], labels: [String], by actor: String) async throws(StoreError)
        -> (added: [Username], existing: [Username])
    {
        var seen = Set<Username>()
        let names = usernames.filter { seen.insert($0).inserted }.map(\.value)
        let rows = try await transaction("accounts.add") { connection -> [(String, Bool)] in
            let result = try await connection.query("""
                WITH upserted AS (
                    INSERT INTO accounts (username, labels, added_by)
                    SELECT u, \(labels)::text[], \(actor) FROM unnest(\(names)::text[]) AS u
                    ON CONFLICT (username) DO UPDATE
                        SET labels = ARRAY(SELECT DISTINCT l FROM unnest(accounts.labels || EXCLUDED.labels) AS l ORDER BY l)
                    RETURNING username, (xmax = 0) AS inserted
                ), logged AS (
                    INSERT INTO events (type, username, payload)
                    SELECT 'account_added', username,
                           jsonb_build_object('username', username, 'by', \(actor)::text, 'labels', \(labels)::text[])
                    FROM upserted WHERE inserted
                )
                SELECT username, inserted FROM upserted
                """, logger: self.logger)
            var rows = [(String, Bool)]()
            for try await row in result.decode((String, Bool).self) { rows.append(row) }
            return rows
        }
        let added = rows.filter(\.1).map { Username(trusted: $0.0) }.sorted()
        let existing = rows.filter { !$0.1 }.map { Username(trusted: $0.0) }.sorted()
        return (added, existing)
    }

    /// Removes accounts, all or none: if one is not watched, nothing changes. Their lives stay in the history.
    public func removeAccounts(_ usernames: [Username], by actor: String) async throws(StoreError) -> [Username] {
        let names = Array(Set(usernames.map(\.value))).sorted()
        let removed = try await transaction("accounts.remove") { connection -> [String] in
            var present = Set<String>()
            for try await name in try await connection.query(
                // In id order, as every statement that locks several accounts takes them.
                "SELECT username FROM accounts WHERE username = ANY(\(names)::text[]) ORDER BY id FOR UPDATE", logger: self.logger
            ).decode(String.self) {
                present.insert(name)
            }
            let missing = names.filter { !present.contains($0) }
            if !missing.isEmpty { throw StoreError.accountsNotFound(missing) }
            // A live left open would never end: no lookup or check_alive follows an account that is
            // gone, and its pipeline would go on transcribing.
            try await connection.query("""
                WITH ended AS (
                    UPDATE lives l SET status = 'ended', ended_at = now(), end_reason = \(LiveEndReason.removed.rawValue),
                        alive_lease_owner = NULL, alive_lease_expires_at = NULL
                    FROM accounts a
                    WHERE a.username = ANY(\(names)::text[]) AND l.account_id = a.id AND l.status = 'live'
                    RETURNING l.id, l.username, l.room_id, l.title, l.restricted
                ), event AS (
                    \(unescaped: Self.liveEventInsert("live_ended", from: "ended", reason: .removed))
                )
                SELECT pg_notify('tttd_events', id::text || ' ' || type) FROM event
                """, logger: self.logger)
            try await connection.query("""
                WITH removed AS (DELETE FROM accounts WHERE username = ANY(\(names)::text[]) RETURNING username)
                INSERT INTO events (type, username, payload)
                SELECT 'account_removed', username, jsonb_build_object('username', username, 'by', \(actor)::text)
                FROM removed
                """, logger: self.logger)
            return names
        }
        return removed.map { Username(trusted: $0) }
    }

    /// The names among these that no account has, in order.
    public func unwatched(_ usernames: [Username]) async throws(StoreError) -> [Username] {
        let names = usernames.map(\.value)
        return try await run("accounts.unwatched") { client in
            var watched = Set<String>()
            for try await name in try await client.query(
                "SELECT username FROM accounts WHERE username = ANY(\(names)::text[])"
            ).decode(String.self) {
                watched.insert(name)
            }
            return usernames.filter { !watched.contains($0.value) }
        }
    }

    public func listAccounts(label: String? = nil) async throws(StoreError) -> [Account] {
        try await run("accounts.list") { client in
            let rows = try await client.query("""
                SELECT username, labels, added_at, added_by, live, last_checked_at, check_state
                FROM accounts
                WHERE \(label)::text IS NULL OR \(label)::text = ANY(labels)
                ORDER BY username
                """)
            var accounts = [Account]()
            for try await (name, labels, addedAt, addedBy, live, checkedAt, state) in rows.decode(
                (String, [String], Date, String?, Bool, Date?, String?).self
            ) {
                accounts.append(Account(
                    username: Username(trusted: name), labels: labels, addedAt: addedAt, addedBy: addedBy,
                    live: live, lastCheckedAt: checkedAt, checkState: state.flatMap(CheckState.init(rawValue:))))
            }
            return accounts
        }
    }
}
