import Foundation
import PostgresNIO
import TTTDomain

/// Retention: old rows go in small batches (each its own short transaction, so the daemon's own
/// writes never wait long), never what an unacknowledged alert refers to, never an event whose
/// deliveries are still pending. Evidence files of the alerts removed are returned, for deletion
/// with their rows.
extension Store {
    public struct Purged: Sendable, Equatable {
        public var rows: Int
        /// Evidence files whose rows are gone (the caller deletes them).
        public var evidenceFiles: [String]
    }

    /// Windows (with their analyses and acknowledged alerts) older than `age`.
    public func purgeTranscripts(olderThan age: Duration, batch: Int) async throws(StoreError) -> Purged {
        try await purge("retention.transcripts", """
            WITH doomed AS (
                SELECT t.id FROM transcripts t
                WHERE t.created_at < now() - make_interval(secs => \(age.asSeconds))
                  AND NOT EXISTS (SELECT 1 FROM analyses n JOIN alerts a ON a.analysis_id = n.id
                                  WHERE n.transcript_id = t.id AND a.acked_at IS NULL)
                ORDER BY t.id LIMIT \(batch)
                FOR UPDATE SKIP LOCKED
            ), files AS (
                SELECT a.evidence_path FROM alerts a JOIN analyses n ON n.id = a.analysis_id
                WHERE n.transcript_id IN (SELECT id FROM doomed) AND a.evidence_path IS NOT NULL
            ), gone AS (
                DELETE FROM transcripts WHERE id IN (SELECT id FROM doomed) RETURNING id
            )
            SELECT (SELECT count(*) FROM gone)::int8, coalesce((SELECT array_agg(evidence_path) FROM files), '{}')
            """)
    }

    /// Analyses (with their acknowledged alerts) older than `age`; the windows stay.
    public func purgeAnalyses(olderThan age: Duration, batch: Int) async throws(StoreError) -> Purged {
        try await purge("retention.analyses", """
            WITH doomed AS (
                SELECT n.id FROM analyses n
                WHERE n.created_at < now() - make_interval(secs => \(age.asSeconds))
                  AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.analysis_id = n.id AND a.acked_at IS NULL)
                ORDER BY n.id LIMIT \(batch)
                FOR UPDATE SKIP LOCKED
            ), files AS (
                SELECT a.evidence_path FROM alerts a
                WHERE a.analysis_id IN (SELECT id FROM doomed) AND a.evidence_path IS NOT NULL
            ), gone AS (
                DELETE FROM analyses WHERE id IN (SELECT id FROM doomed) RETURNING id
            )
            SELECT (SELECT count(*) FROM gone)::int8, coalesce((SELECT array_agg(evidence_path) FROM files), '{}')
            """)
    }

    /// Evidence clips of acknowledged alerts older than `age`: the file goes, the alert keeps its hash.
    public func purgeEvidence(olderThan age: Duration, batch: Int) async throws(StoreError) -> Purged {
        try await purge("retention.evidence", """
            WITH doomed AS (
                SELECT id, evidence_path FROM alerts
                WHERE evidence_path IS NOT NULL AND acked_at IS NOT NULL
                  AND created_at < now() - make_interval(secs => \(age.asSeconds))
                ORDER BY id LIMIT \(batch)
                FOR UPDATE SKIP LOCKED
            ), cleared AS (
                UPDATE alerts a SET evidence_path = NULL FROM doomed WHERE a.id = doomed.id RETURNING a.id
            )
            SELECT (SELECT count(*) FROM cleared)::int8, coalesce((SELECT array_agg(evidence_path) FROM doomed), '{}')
            """)
    }

    /// Events older than `age`, except those still being delivered and those of unacknowledged alerts.
    public func purgeEvents(olderThan age: Duration, batch: Int) async throws(StoreError) -> Purged {
        try await purge("retention.events", """
            WITH doomed AS (
                SELECT e.id FROM events e
                WHERE e.created_at < now() - make_interval(secs => \(age.asSeconds))
                  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id AND d.state = 'pending')
                  AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.event_id = e.id AND a.acked_at IS NULL)
                ORDER BY e.id LIMIT \(batch)
                FOR UPDATE SKIP LOCKED
            ), gone AS (
                DELETE FROM events WHERE id IN (SELECT id FROM doomed) RETURNING id
            )
            SELECT (SELECT count(*) FROM gone)::int8, '{}'::text[]
            """)
    }

    private func purge(_ what: String, _ sql: String) async throws(StoreError) -> Purged {
        try await run(what) { client in
            let rows = try await client.query(PostgresQuery(unsafeSQL: sql))
            for try await (count, files) in rows.decode((Int64, [String]).self) {
                return Purged(rows: Int(count), evidenceFiles: files)
            }
            return Purged(rows: 0, evidenceFiles: [])
        }
    }
}
