import Foundation
import PostgresNIO
import TTTDomain

/// The outbox: one delivery per event and channel, queued with the event (a trigger, in the
/// event's transaction), delivered at least once, retried until it succeeds or its time is up.
extension Store {
    public struct Channel: Sendable, Equatable {
        public var name: String
        public var eventTypes: [String]
        public init(name: String, eventTypes: [String]) {
            self.name = name
            self.eventTypes = eventTypes
        }
    }

    public struct PendingDelivery: Sendable {
        public var id: Int64
        public var eventID: Int64
        public var channel: String
        public var type: String
        /// The event's JSON object, as stored.
        public var payload: String
        public var attempts: Int
        public var eventCreatedAt: Date
    }

    /// Makes the channels table say what the configuration says. Channels removed from the
    /// configuration stop receiving new events; what was queued for them stays until delivered.
    public func syncChannels(_ channels: [Channel]) async throws(StoreError) {
        try await transaction("channels.sync") { [logger] connection in
            let names = channels.map(\.name)
            try await connection.query("DELETE FROM channels WHERE NOT (name = ANY(\(names)::text[]))", logger: logger)
            for channel in channels {
                try await connection.query("""
                    INSERT INTO channels (name, event_types) VALUES (\(channel.name), \(channel.eventTypes)::text[])
                    ON CONFLICT (name) DO UPDATE SET event_types = EXCLUDED.event_types, updated_at = now()
                    """, logger: logger)
            }
        }
    }

    /// Frees the deliveries a previous run of this node held (it died sending them): they go out
    /// now, not when the lease runs out.
    public func releaseDeliveryLeases(node: String) async throws(StoreError) {
        try await run("deliveries.release_node") { client in
            try await client.query("""
                UPDATE deliveries SET lease_owner = NULL, lease_expires_at = NULL
                WHERE lease_owner = \(node) AND state = 'pending'
                """)
        }
    }

    /// Deliveries due on these channels, leased to this node while it sends them.
    public func claimDeliveries(node: String, channels: [String], limit: Int, lease: Duration) async throws(StoreError) -> [PendingDelivery] {
        guard !channels.isEmpty else { return [] }
        return try await transaction("deliveries.claim") { [logger] connection in
            let rows = try await connection.query("""
                WITH due AS (
                    SELECT id FROM deliveries
                    WHERE state = 'pending' AND next_attempt_at <= now() AND channel = ANY(\(channels)::text[])
                      AND (lease_owner IS NULL OR lease_expires_at < now())
                    ORDER BY next_attempt_at, id LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED
                ), claimed AS (
                    UPDATE deliveries d SET lease_owner = \(node),
                        lease_expires_at = now() + make_interval(secs => \(lease.asSeconds))
                    FROM due WHERE d.id = due.id
                    RETURNING d.id, d.event_id, d.channel, d.attempts
                )
                SELECT c.id, c.event_id, c.channel, e.type, e.payload::text, c.attempts, e.created_at
                FROM claimed c JOIN events e ON e.id = c.event_id
                ORDER BY c.event_id
                """, logger: logger)
            var deliveries = [PendingDelivery]()
            for try await (id, event, channel, type, payload, attempts, created) in rows.decode(
                (Int64, Int64, String, String, String, Int32, Date).self
            ) {
                deliveries.append(PendingDelivery(id: id, eventID: event, channel: channel, type: type, payload: payload,
                                                  attempts: Int(attempts), eventCreatedAt: created))
            }
            return deliveries
        }
    }

    public enum DeliveryOutcome: Sendable {
        case delivered
        case retry(after: Duration, error: String)
        case failed(error: String)
    }

    public func finishDelivery(_ id: Int64, outcome: DeliveryOutcome) async throws(StoreError) {
        try await run("deliveries.finish") { client in
            switch outcome {
            case .delivered:
                try await client.query("""
                    UPDATE deliveries SET state = 'delivered', delivered_at = now(), attempts = attempts + 1,
                        last_error = NULL, lease_owner = NULL, lease_expires_at = NULL
                    WHERE id = \(id)
                    """)
            case let .retry(after, error):
                try await client.query("""
                    UPDATE deliveries SET attempts = attempts + 1, last_error = \(error),
                        next_attempt_at = now() + make_interval(secs => \(after.asSeconds)),
                        lease_owner = NULL, lease_expires_at = NULL
                    WHERE id = \(id)
                    """)
            case .failed(let error):
                try await client.query("""
                    UPDATE deliveries SET state = 'failed', attempts = attempts + 1, last_error = \(error),
                        lease_owner = NULL, lease_expires_at = NULL
                    WHERE id = \(id)
                    """)
            }
        }
    }

    /// Delivery state per channel of one event (for `tttctl alerts`).
    public func deliveries(eventIDs: [Int64]) async throws(StoreError) -> [Int64: [(channel: String, state: String, attempts: Int, error: String?)]] {
        try await run("deliveries.list") { client in
            let rows = try await client.query("""
                SELECT event_id, channel, state, attempts, last_error FROM deliveries
                WHERE event_id = ANY(\(eventIDs)::int8[]) ORDER BY channel
                """)
            var result = [Int64: [(channel: String, state: String, attempts: Int, error: String?)]]()
            for try await (event, channel, state, attempts, error) in rows.decode((Int64, String, String, Int32, String?).self) {
                result[event, default: []].append((channel, state, Int(attempts), error))
            }
            return result
        }
    }
}
