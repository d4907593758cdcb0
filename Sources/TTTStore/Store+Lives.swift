import Foundation
import PostgresNIO
import TTTDomain
import TTTEventLoop

extension Store {
    public struct LiveRecord: Sendable, Equatable {
        public var id: Int64
        public var username: String
        public var roomID: String
        public var title: String?
        public var startedAt: Date
        public var endedAt: Date?
        public var status: String
        public var peakViewers: Int?
        public var endReason: String?
        public var restricted: Bool
    }

    public struct EventRecord: Sendable {
        public var id: Int64
        public var type: String
        public var liveID: Int64?
        public var username: String?
        /// The event's JSON object as stored (the keys of INTERFACES.md).
        public var payload: String
        public var createdAt: Date
    }

    public func listLives(activeOnly: Bool, username: String?, limit: Int) async throws(StoreError) -> [LiveRecord] {
        try await run("lives.list") { client in
            let rows = try await client.query("""
                SELECT id, username, room_id, title, started_at, ended_at, status, peak_viewers, end_reason, restricted
                FROM lives
                WHERE (NOT \(activeOnly) OR status = 'live') AND (\(username)::text IS NULL OR username = \(username)::text)
                ORDER BY started_at DESC, id DESC
                LIMIT \(limit)
                """)
            return try await Self.lives(from: rows)
        }
    }

    public func live(id: Int64) async throws(StoreError) -> LiveRecord? {
        try await run("lives.show") { client in
            let rows = try await client.query("""
                SELECT id, username, room_id, title, started_at, ended_at, status, peak_viewers, end_reason, restricted
                FROM lives WHERE id = \(id)
                """)
            return try await Self.lives(from: rows).first
        }
    }

    private static func lives(from rows: PostgresRowSequence) async throws -> [LiveRecord] {
        var lives = [LiveRecord]()
        for try await (id, name, room, title, started, ended, status, peak, reason, restricted) in rows.decode(
            (Int64, String, String, String?, Date, Date?, String, Int?, String?, Bool).self
        ) {
            lives.append(LiveRecord(id: id, username: name, roomID: room, title: title, startedAt: started, endedAt: ended,
                                    status: status, peakViewers: peak, endReason: reason, restricted: restricted))
        }
        return lives
    }

    /// Events after `id`, and those of `holes` (ids at or below it not seen yet), oldest first.
    public func events(after id: Int64, holes: [Int64] = [], limit: Int) async throws(StoreError) -> [EventRecord] {
        try await run("events.after") { client in
            let rows = try await client.query("""
                SELECT id, type, live_id, username, payload::text, created_at
                FROM events WHERE id > \(id) OR id = ANY(\(holes)::int8[])
                ORDER BY id LIMIT \(limit)
                """)
            var events = [EventRecord]()
            for try await (id, type, live, name, payload, created) in rows.decode((Int64, String, Int64?, String?, String, Date).self) {
                events.append(EventRecord(id: id, type: type, liveID: live, username: name, payload: payload, createdAt: created))
            }
            return events
        }
    }

    /// The highest event id committed, and the ids below it (within `window` of it) that no
    /// committed event has: a transaction still running may commit them yet.
    public func eventsEnd(window: Int) async throws(StoreError) -> (last: Int64, holes: [Int64]) {
        try await run("events.end") { client in
            let rows = try await client.query("""
                WITH last AS (SELECT coalesce(max(id), 0)::int8 AS id FROM events)
                SELECT last.id, coalesce(array_agg(g.id ORDER BY g.id) FILTER (WHERE g.id IS NOT NULL), '{}')::int8[]
                FROM last LEFT JOIN LATERAL (
                    SELECT n AS id FROM generate_series(greatest(1, last.id - \(window) + 1), last.id - 1) n
                    WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.id = n)
                ) g ON true
                GROUP BY last.id
                """)
            for try await (last, holes) in rows.decode((Int64, [Int64]).self) { return (last, holes) }
            return (0, [])
        }
    }

    /// The type of the event a `tttd_events` notification announces (its payload is `<id> <type>`).
    public static func announcedEventType(_ payload: String) -> Substring? {
        guard let space = payload.firstIndex(of: " ") else { return nil }
        return payload[payload.index(after: space)...]
    }

    /// Holds one pooled connection in LISTEN until `body` returns or the connection fails.
    ///
    /// A connection that dies without a word (a NAT or a firewall forgetting it, a server host that
    /// vanished) would leave LISTEN silent for good, since nothing else is sent on it: every
    /// `keepAlive` a query goes on it, and one with no answer within the query timeout closes the
    /// connection and ends `listen` with that error (the caller listens again on another).
    public func listen(_ channel: String, keepAlive: Duration = .seconds(30),
                       _ body: @escaping @Sendable (PostgresNotificationSequence) async throws -> Void) async throws {
        let timeout = queryTimeout, logger = self.logger
        try await client.withConnection { connection in
            try await connection.listen(on: channel) { notifications in
                do {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await body(notifications) }
                        group.addTask {
                            while true {
                                try await LoopSleep.sleep(for: keepAlive)
                                try await withDeadline(timeout, what: "LISTEN keep-alive") {
                                    _ = try await connection.query("SELECT 1", logger: logger)
                                }
                            }
                        }
                        // `body` returned (the keep-alive ends only by throwing): stop the keep-alive.
                        try await group.next()
                        group.cancelAll()
                    }
                } catch {
                    // Not to be handed out again: it may be the one that stopped answering.
                    try? await connection.close()
                    throw error
                }
            }
        }
    }
}
