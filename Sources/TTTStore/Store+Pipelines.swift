import Foundation
import PostgresNIO
import TTTDomain

/// Transcription's use of the database: the lease on a live's pipeline, the pipeline's states, and
/// each window's transcript written with its event and the pipeline's counters in one transaction.
extension Store {
    /// An open live this node may run a pipeline for, with where its previous pipeline left off.
    public struct PipelineClaim: Sendable {
        public var liveID: Int64
        public var username: String
        public var roomID: String
        public var streamURL: String?
        /// The next window's number and where the live's timeline stands (0 for a first pipeline).
        public var nextSeq: Int
        public var timelineEnd: Double
        /// When the previous pipeline of this live last recorded something: the time since is a gap.
        public var previousActivity: Date?
    }

    public struct PipelineRecord: Sendable {
        public var id: Int64
        public var liveID: Int64
        public var username: String
        public var nodeID: String
        public var state: String
        public var reason: String?
        public var startedAt: Date
        public var endedAt: Date?
        public var audioSeconds: Double
        public var gapSeconds: Double
        public var windows: Int
    }

    /// One window as recorded. Text is empty for silent and skipped windows.
    public struct TranscriptRow: Sendable, Equatable {
        public var seq: Int
        public var startSeconds: Double
        public var endSeconds: Double
        public var text: String
        public var language: String?
        public var model: String?
        public var silent: Bool
        public var filtered: Bool
        public var unreliable: Bool
        public var skipped: Bool
        /// Why it was skipped or filtered.
        public var reason: String?
        public var asrMilliseconds: Int?
        public var latencyMilliseconds: Int?
        /// The ASR's segments (start, end, text, confidences) as a JSON array.
        public var segmentsJSON: String?

        public init(seq: Int, startSeconds: Double, endSeconds: Double, text: String = "", language: String? = nil,
                    model: String? = nil, silent: Bool = false, filtered: Bool = false, unreliable: Bool = false,
                    skipped: Bool = false, reason: String? = nil, asrMilliseconds: Int? = nil,
                    latencyMilliseconds: Int? = nil, segmentsJSON: String? = nil) {
            self.seq = seq
            self.startSeconds = startSeconds
            self.endSeconds = endSeconds
            self.text = text
            self.language = language
            self.model = model
            self.silent = silent
            self.filtered = filtered
            self.unreliable = unreliable
            self.skipped = skipped
            self.reason = reason
            self.asrMilliseconds = asrMilliseconds
            self.latencyMilliseconds = latencyMilliseconds
            self.segmentsJSON = segmentsJSON
        }

        /// The `flags` of the `transcript` event (INTERFACES.md).
        public var flags: [String] {
            var flags = [String]()
            if filtered { flags.append("filtered") }
            if unreliable { flags.append("unreliable") }
            if skipped { flags.append("skipped") }
            return flags
        }
    }

    /// The counters a pipeline keeps in its row, written with each window.
    public struct PipelineProgress: Sendable {
        public var audioSeconds: Double
        public var gapSeconds: Double
        public var windows: Int
        public init(audioSeconds: Double, gapSeconds: Double, windows: Int) {
            self.audioSeconds = audioSeconds
            self.gapSeconds = gapSeconds
            self.windows = windows
        }
    }

    // MARK: Leases

    /// Claims up to `limit` open lives that no live node runs a pipeline for (never one an admin stopped).
    public func claimPipelines(node: String, limit: Int, lease: Duration) async throws(StoreError) -> [PipelineClaim] {
        guard limit > 0 else { return [] }
        return try await transaction("pipelines.claim") { [logger] connection in
            let rows = try await connection.query("""
                WITH claimable AS (
                    SELECT id FROM lives
                    WHERE status = 'live' AND NOT pipeline_stopped
                      AND (pipeline_lease_expires_at IS NULL OR pipeline_lease_expires_at < now())
                    ORDER BY started_at
                    LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED
                ), claimed AS (
                    UPDATE lives l SET pipeline_owner = \(node),
                        pipeline_lease_expires_at = now() + make_interval(secs => \(lease.asSeconds))
                    FROM claimable c WHERE l.id = c.id
                    RETURNING l.id, l.username, l.room_id, l.stream_url
                )
                SELECT c.id, c.username, c.room_id, c.stream_url,
                       coalesce((SELECT max(seq) + 1 FROM transcripts t WHERE t.live_id = c.id), 0)::int4,
                       coalesce((SELECT max(end_s) FROM transcripts t WHERE t.live_id = c.id), 0)::float8,
                       (SELECT max(updated_at) FROM pipelines p WHERE p.live_id = c.id)
                FROM claimed c
                """, logger: logger)
            var claims = [PipelineClaim]()
            for try await (id, name, room, url, seq, end, activity) in rows.decode(
                (Int64, String, String, String?, Int32, Double, Date?).self
            ) {
                claims.append(PipelineClaim(liveID: id, username: name, roomID: room, streamURL: url,
                                            nextSeq: Int(seq), timelineEnd: end, previousActivity: activity))
            }
            return claims
        }
    }

    /// What the supervisor learns about the lives it runs pipelines for when it renews their leases.
    public struct PipelineLiveState: Sendable, Equatable {
        public var ended: Bool
        public var stopRequested: Bool
        public var streamURL: String?
    }

    /// Renews this node's pipeline leases; tells, per live, whether it ended or an admin stopped it.
    /// A live missing from the answer was taken by another node (its lease had run out).
    public func renewPipelines(node: String, liveIDs: [Int64], lease: Duration) async throws(StoreError) -> [Int64: PipelineLiveState] {
        guard !liveIDs.isEmpty else { return [:] }
        return try await run("pipelines.renew") { client in
            let rows = try await client.query("""
                UPDATE lives SET pipeline_lease_expires_at = now() + make_interval(secs => \(lease.asSeconds))
                WHERE id = ANY(\(liveIDs)::int8[]) AND pipeline_owner = \(node)
                RETURNING id, status = 'ended', pipeline_stopped, stream_url
                """)
            var states = [Int64: PipelineLiveState]()
            for try await (id, ended, stopped, url) in rows.decode((Int64, Bool, Bool, String?).self) {
                states[id] = PipelineLiveState(ended: ended, stopRequested: stopped, streamURL: url)
            }
            return states
        }
    }

    /// Frees the leases this node held before a restart (its pipelines died with it).
    public func releasePipelineLeases(node: String) async throws(StoreError) {
        try await transaction("pipelines.release") { [logger] connection in
            try await connection.query("""
                -- updated_at stays: it is when the pipeline last recorded something, where the next one's gap starts.
                UPDATE pipelines SET state = 'failed', reason = 'tttd stopped unexpectedly', ended_at = now()
                WHERE node_id = \(node) AND ended_at IS NULL
                """, logger: logger)
            try await connection.query(
                "UPDATE lives SET pipeline_owner = NULL, pipeline_lease_expires_at = NULL WHERE pipeline_owner = \(node)",
                logger: logger)
        }
    }

    // MARK: States

    /// Announces, once per live, the open lives that get no pipeline for now because this node is
    /// full; they still get one when a slot frees. Returns the lives announced.
    @discardableResult
    public func announceRefusals(reason: String) async throws(StoreError) -> [Int64] {
        try await transaction("pipelines.refuse") { [logger] connection in
            let rows = try await connection.query("""
                UPDATE lives SET pipeline_refused = true
                WHERE status = 'live' AND NOT pipeline_stopped AND NOT pipeline_refused
                  AND (pipeline_lease_expires_at IS NULL OR pipeline_lease_expires_at < now())
                RETURNING id
                """, logger: logger)
            var refused = [Int64]()
            for try await id in rows.decode(Int64.self) { refused.append(id) }
            for id in refused {
                _ = try await Self.insertPipelineEvent(connection, liveID: id, state: "failed", reason: reason, logger: logger)
            }
            return refused
        }
    }

    /// Opens a pipeline row in `starting` and announces it.
    public func startPipeline(liveID: Int64, node: String) async throws(StoreError) -> Int64 {
        try await transaction("pipelines.start") { [logger] connection in
            let rows = try await connection.query("""
                INSERT INTO pipelines (live_id, node_id, state) VALUES (\(liveID), \(node), 'starting') RETURNING id
                """, logger: logger)
            var id: Int64?
            for try await value in rows.decode(Int64.self) { id = value }
            guard let id else { throw StoreError.failed("pipeline row not created") }
            _ = try await Self.insertPipelineEvent(connection, liveID: liveID, state: "starting", reason: nil, logger: logger)
            return id
        }
    }

    /// A state transition and its `pipeline_state` event. `stopped`/`failed` end the pipeline and free
    /// the live's lease; after `failed` the live's next pipeline waits `retryAfter`.
    public func setPipelineState(_ pipelineID: Int64, liveID: Int64, node: String, state: String, reason: String?,
                                 retryAfter: Duration = .zero) async throws(StoreError) {
        let final = state == "stopped" || state == "failed"
        try await transaction("pipelines.state") { [logger] connection in
            try await connection.query("""
                UPDATE pipelines SET state = \(state), reason = \(reason)::text, updated_at = now(),
                    ended_at = CASE WHEN \(final) THEN now() ELSE ended_at END
                WHERE id = \(pipelineID)
                """, logger: logger)
            if final {
                try await connection.query("""
                    UPDATE lives SET pipeline_owner = NULL,
                        pipeline_lease_expires_at = CASE WHEN \(state) = 'failed'
                                                         THEN now() + make_interval(secs => \(retryAfter.asSeconds)) END
                    WHERE id = \(liveID) AND pipeline_owner = \(node)
                    """, logger: logger)
            }
            _ = try await Self.insertPipelineEvent(connection, liveID: liveID, state: state, reason: reason, logger: logger)
        }
    }

    /// Marks the live so that no pipeline runs for it again; the node running it stops it.
    /// Returns the live id, or nil when there is no such running pipeline.
    public func requestPipelineStop(_ pipelineID: Int64) async throws(StoreError) -> Int64? {
        try await run("pipelines.stop") { client in
            let rows = try await client.query("""
                UPDATE lives l SET pipeline_stopped = true
                FROM pipelines p WHERE p.id = \(pipelineID) AND p.ended_at IS NULL AND l.id = p.live_id
                RETURNING l.id
                """)
            for try await id in rows.decode(Int64.self) { return id }
            return nil
        }
    }

    // MARK: Transcripts

    /// A window's transcript, its `transcript` event and the pipeline's counters, in one transaction.
    @discardableResult
    /// With `analyse`, a window with words waits for the analyzer (`analysis_state` pending).
    public func recordTranscript(_ row: TranscriptRow, liveID: Int64, pipelineID: Int64,
                                 progress: PipelineProgress, analyse: Bool) async throws(StoreError) -> Int64 {
        let judgeable = !row.silent && !row.skipped && !row.filtered
            && !row.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
        let analysisState = !analyse ? "off" : judgeable ? "pending" : "not_needed"
        let payload = Self.transcriptPayload(row, liveID: liveID)
        return try await transaction("transcripts.record") { [logger] connection in
            try await connection.query("""
                INSERT INTO transcripts (live_id, pipeline_id, seq, start_s, end_s, text, language, model, silent, filtered,
                                         unreliable, skipped, reason, asr_ms, latency_ms, segments, analysis_state)
                VALUES (\(liveID), \(pipelineID), \(row.seq), \(row.startSeconds), \(row.endSeconds), \(row.text),
                        \(row.language)::text, \(row.model)::text, \(row.silent), \(row.filtered), \(row.unreliable),
                        \(row.skipped), \(row.reason)::text, \(row.asrMilliseconds)::int4, \(row.latencyMilliseconds)::int4,
                        \(row.segmentsJSON)::jsonb, \(analysisState))
                """, logger: logger)
            try await connection.query("""
                UPDATE pipelines SET audio_s = \(progress.audioSeconds), gaps_s = \(progress.gapSeconds),
                    windows = \(progress.windows), updated_at = now()
                WHERE id = \(pipelineID)
                """, logger: logger)
            return try await Self.insertEvent(connection, type: "transcript", liveID: liveID, payloadJSON: payload, logger: logger)
        }
    }

    public func pipelines(activeOnly: Bool) async throws(StoreError) -> [PipelineRecord] {
        try await run("pipelines.list") { client in
            let rows = try await client.query("""
                SELECT p.id, p.live_id, l.username, p.node_id, p.state, p.reason, p.started_at, p.ended_at,
                       p.audio_s, p.gaps_s, p.windows
                FROM pipelines p JOIN lives l ON l.id = p.live_id
                WHERE NOT \(activeOnly) OR p.ended_at IS NULL
                ORDER BY p.started_at DESC, p.id DESC LIMIT 1000
                """)
            var records = [PipelineRecord]()
            for try await (id, live, name, node, state, reason, started, ended, audio, gaps, windows) in rows.decode(
                (Int64, Int64, String, String, String, String?, Date, Date?, Double, Double, Int32).self
            ) {
                records.append(PipelineRecord(id: id, liveID: live, username: name, nodeID: node, state: state, reason: reason,
                                              startedAt: started, endedAt: ended, audioSeconds: audio, gapSeconds: gaps,
                                              windows: Int(windows)))
            }
            return records
        }
    }

    /// A live's transcripts in order, each as its `transcript` event object.
    public func transcripts(liveID: Int64) async throws(StoreError) -> [String] {
        try await run("transcripts.list") { client in
            let rows = try await client.query("""
                SELECT seq, start_s, end_s, text, language, model, silent, filtered, unreliable, skipped, reason, asr_ms, latency_ms
                FROM transcripts WHERE live_id = \(liveID) ORDER BY seq
                """)
            var payloads = [String]()
            for try await (seq, start, end, text, language, model, silent, filtered, unreliable, skipped, reason, asr, latency)
                in rows.decode((Int32, Double, Double, String, String?, String?, Bool, Bool, Bool, Bool, String?, Int32?, Int32?).self) {
                let row = TranscriptRow(seq: Int(seq), startSeconds: start, endSeconds: end, text: text, language: language,
                                        model: model, silent: silent, filtered: filtered, unreliable: unreliable,
                                        skipped: skipped, reason: reason, asrMilliseconds: asr.map(Int.init),
                                        latencyMilliseconds: latency.map(Int.init))
                payloads.append(Self.transcriptPayload(row, liveID: liveID))
            }
            return payloads
        }
    }

    // MARK: Events

    /// The `transcript` event object (INTERFACES.md keys), as JSON text.
    static func transcriptPayload(_ row: TranscriptRow, liveID: Int64) -> String {
        var object: [String: Any] = [
            "type": "transcript", "live_id": liveID, "seq": row.seq,
            "start_s": (row.startSeconds * 1000).rounded() / 1000, "end_s": (row.endSeconds * 1000).rounded() / 1000,
            "text": row.text, "silent": row.silent, "flags": row.flags,
            "language": row.language.map { $0 as Any } ?? NSNull(),
        ]
        if let reason = row.reason { object["reason"] = reason }
        if let asr = row.asrMilliseconds { object["asr_ms"] = asr }
        if let latency = row.latencyMilliseconds { object["latency_ms"] = latency }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    static func insertPipelineEvent(_ connection: PostgresConnection, liveID: Int64, state: String, reason: String?,
                                    logger: Logger) async throws -> Int64 {
        var object: [String: Any] = ["type": "pipeline_state", "live_id": liveID, "state": state]
        object["reason"] = reason.map { $0 as Any } ?? NSNull()
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return try await insertEvent(connection, type: "pipeline_state", liveID: liveID,
                                     payloadJSON: String(decoding: data, as: UTF8.self), logger: logger)
    }

    /// Inserts an event whose body a query of tttd's own builds (one row, one text column).
    static func insertEvent(_ connection: PostgresConnection, type: String, liveID: Int64, payloadSQL: String,
                            logger: Logger) async throws -> Int64 {
        let rows = try await connection.query("""
            WITH ev AS (
                INSERT INTO events (type, live_id, username, payload)
                SELECT \(type), l.id, l.username, (\(unescaped: payloadSQL))::jsonb FROM lives l WHERE l.id = \(liveID)
                RETURNING id, type
            )
            SELECT id, pg_notify('tttd_events', id::text || ' ' || type) FROM ev
            """, logger: logger)
        for try await (id, _) in rows.decode((Int64, String).self) { return id }
        throw StoreError.failed("live \(liveID) vanished while writing its event")
    }

    /// Inserts an event about a live (its username copied from the live) and wakes followers.
    static func insertEvent(_ connection: PostgresConnection, type: String, liveID: Int64, payloadJSON: String,
                            logger: Logger) async throws -> Int64 {
        let rows = try await connection.query("""
            WITH ev AS (
                INSERT INTO events (type, live_id, username, payload)
                SELECT \(type), l.id, l.username, \(payloadJSON)::jsonb || jsonb_build_object('username', l.username)
                FROM lives l WHERE l.id = \(liveID)
                RETURNING id, type
            )
            SELECT id, pg_notify('tttd_events', id::text || ' ' || type) FROM ev
            """, logger: logger)
        for try await (id, _) in rows.decode((Int64, String).self) { return id }
        throw StoreError.failed("live \(liveID) vanished while writing its event")
    }
}
