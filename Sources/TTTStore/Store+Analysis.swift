import Foundation
import PostgresNIO
import TTTDomain

/// Analysis and alerts in the database: windows waiting for the analyzer (claimed with leases),
/// each verdict with its event, and an alert with its event in the same transaction — the
/// deliveries of every event are queued by a trigger in that transaction too.
extension Store {
    /// A window to judge, with the window before it as context.
    public struct AnalysisJob: Sendable {
        public var transcriptID: Int64
        public var liveID: Int64
        public var seq: Int
        public var text: String
        public var unreliable: Bool
        public var language: String?
        public var startSeconds: Double
        public var endSeconds: Double
        public var username: String
        public var context: String?
    }

    /// A verdict as recorded (`status` ok, cached or failed). Field values are INTERFACES.md's.
    public struct AnalysisRecord: Sendable {
        public var status: String
        public var category: String?
        public var virality: String?
        public var hateful: Bool?
        public var target: String?
        public var hateType: String?
        public var justification: String?
        public var citation: String?
        public var quoteVerified: Bool?
        public var manipulation: Bool?
        public var riskScore: Double?
        public var model: String
        public var mode: String?
        public var promptSHA256: String
        public var attempts: Int
        public var latencyMilliseconds: Int?
        public var rawReply: String?
        public var error: String?
        public var cachedFrom: Int64?
        public var textHash: String

        public init(status: String, category: String? = nil, virality: String? = nil, hateful: Bool? = nil,
                    target: String? = nil, hateType: String? = nil, justification: String? = nil, citation: String? = nil,
                    quoteVerified: Bool? = nil, manipulation: Bool? = nil, riskScore: Double? = nil, model: String,
                    mode: String? = nil, promptSHA256: String, attempts: Int = 1, latencyMilliseconds: Int? = nil,
                    rawReply: String? = nil, error: String? = nil, cachedFrom: Int64? = nil, textHash: String) {
            self.status = status
            self.category = category
            self.virality = virality
            self.hateful = hateful
            self.target = target
            self.hateType = hateType
            self.justification = justification
            self.citation = citation
            self.quoteVerified = quoteVerified
            self.manipulation = manipulation
            self.riskScore = riskScore
            self.model = model
            self.mode = mode
            self.promptSHA256 = promptSHA256
            self.attempts = attempts
            self.latencyMilliseconds = latencyMilliseconds
            self.rawReply = rawReply
            self.error = error
            self.cachedFrom = cachedFrom
            self.textHash = textHash
        }
    }

    /// An alert the analysis asks for; the store decides against the cooldown, in the transaction.
    public struct AlertDraft: Sendable {
        public var cooldown: Duration
        public var evidencePath: String?
        public var evidenceSHA256: String?

        public init(cooldown: Duration, evidencePath: String?, evidenceSHA256: String?) {
            self.cooldown = cooldown
            self.evidencePath = evidencePath
            self.evidenceSHA256 = evidenceSHA256
        }
    }

    public struct RecordedAnalysis: Sendable {
        public var analysisID: Int64
        /// Nil when no alert was asked for, or the cooldown held it back.
        public var alertID: Int64?
        public var suppressedByCooldown: Bool
    }

    // MARK: Claims

    /// The oldest window waiting for the analyzer, leased to this node.
    public func claimAnalysis(node: String, lease: Duration) async throws(StoreError) -> AnalysisJob? {
        try await transaction("analysis.claim") { [logger] connection in
            let rows = try await connection.query("""
                WITH next AS (
                    SELECT id FROM transcripts
                    WHERE analysis_state = 'pending' AND (analysis_owner IS NULL OR analysis_lease_expires_at < now())
                    ORDER BY id LIMIT 1
                    FOR UPDATE SKIP LOCKED
                ), claimed AS (
                    UPDATE transcripts t SET analysis_owner = \(node),
                        analysis_lease_expires_at = now() + make_interval(secs => \(lease.asSeconds))
                    FROM next WHERE t.id = next.id
                    RETURNING t.id, t.live_id, t.seq, t.text, t.unreliable, t.language, t.start_s, t.end_s
                )
                SELECT c.id, c.live_id, c.seq, c.text, c.unreliable, c.language, c.start_s, c.end_s, l.username,
                       (SELECT p.text FROM transcripts p
                        WHERE p.live_id = c.live_id AND p.seq = c.seq - 1 AND NOT p.silent AND NOT p.skipped AND NOT p.filtered)
                FROM claimed c JOIN lives l ON l.id = c.live_id
                """, logger: logger)
            for try await (id, live, seq, text, unreliable, language, start, end, username, context) in rows.decode(
                (Int64, Int64, Int32, String, Bool, String?, Double, Double, String, String?).self
            ) {
                return AnalysisJob(transcriptID: id, liveID: live, seq: Int(seq), text: text, unreliable: unreliable,
                                   language: language, startSeconds: start, endSeconds: end, username: username,
                                   context: context)
            }
            return nil
        }
    }

    /// Frees the windows a previous run of this node held (it died judging them).
    public func releaseAnalysisLeases(node: String) async throws(StoreError) {
        try await run("analysis.release_node") { client in
            try await client.query("""
                UPDATE transcripts SET analysis_owner = NULL, analysis_lease_expires_at = NULL
                WHERE analysis_owner = \(node) AND analysis_state = 'pending'
                """)
        }
    }

    /// Gives a window back to the queue (the analyzer is unreachable; it is tried again later).
    public func releaseAnalysis(transcriptID: Int64, node: String) async throws(StoreError) {
        try await run("analysis.release") { client in
            try await client.query("""
                UPDATE transcripts SET analysis_owner = NULL, analysis_lease_expires_at = NULL
                WHERE id = \(transcriptID) AND analysis_owner = \(node)
                """)
        }
    }

    /// A verdict already given to the same normalised text with the same prompt and model.
    public func cachedAnalysis(textHash: String, promptSHA256: String, model: String) async throws(StoreError) -> (id: Int64, record: AnalysisRecord)? {
        try await run("analysis.cache") { client in
            let rows = try await client.query("""
                SELECT id, category, virality, hateful, target, hate_type, justification, citation, manipulation, risk_score, mode
                FROM analyses
                WHERE text_hash = \(textHash) AND prompt_sha256 = \(promptSHA256) AND model = \(model) AND status = 'ok'
                ORDER BY id DESC LIMIT 1
                """)
            for try await (id, category, virality, hateful, target, hateType, justification, citation, manipulation, risk, mode)
                in rows.decode((Int64, String?, String?, Bool?, String?, String?, String?, String?, Bool?, Double?, String?).self) {
                return (id, AnalysisRecord(status: "cached", category: category, virality: virality, hateful: hateful,
                                           target: target, hateType: hateType, justification: justification,
                                           citation: citation, manipulation: manipulation, riskScore: risk, model: model,
                                           mode: mode, promptSHA256: promptSHA256, attempts: 0, cachedFrom: id,
                                           textHash: textHash))
            }
            return nil
        }
    }

    // MARK: Recording

    /// The verdict (or the failure), its `analysis` / `analysis_failed` event, the window's state,
    /// and the alert with its `alert` event when one is due — one transaction.
    public func recordAnalysis(_ record: AnalysisRecord, for job: AnalysisJob, alert: AlertDraft?) async throws(StoreError) -> RecordedAnalysis {
        try await transaction("analysis.record") { [logger] connection in
            let inserted = try await connection.query("""
                INSERT INTO analyses (transcript_id, live_id, seq, status, category, virality, hateful, target, hate_type,
                    justification, citation, quote_verified, manipulation, risk_score, model, mode, prompt_sha256, attempts,
                    latency_ms, raw_reply, error, cached_from, text_hash)
                VALUES (\(job.transcriptID), \(job.liveID), \(job.seq), \(record.status), \(record.category)::text,
                    \(record.virality)::text, \(record.hateful)::bool, \(record.target)::text, \(record.hateType)::text,
                    \(record.justification)::text, \(record.citation)::text, \(record.quoteVerified)::bool,
                    \(record.manipulation)::bool, \(record.riskScore)::float8, \(record.model), \(record.mode)::text,
                    \(record.promptSHA256), \(record.attempts), \(record.latencyMilliseconds)::int4, \(record.rawReply)::text,
                    \(record.error)::text, \(record.cachedFrom)::int8, \(record.textHash))
                ON CONFLICT (transcript_id) DO NOTHING
                RETURNING id
                """, logger: logger)
            var analysisID: Int64?
            for try await id in inserted.decode(Int64.self) { analysisID = id }
            guard let analysisID else { throw StoreError.failed("window \(job.transcriptID) was analysed twice") }
            try await connection.query("""
                UPDATE transcripts SET analysis_state = \(record.status == "failed" ? "failed" : "done"),
                    analysis_owner = NULL, analysis_lease_expires_at = NULL
                WHERE id = \(job.transcriptID)
                """, logger: logger)
            let type = record.status == "failed" ? "analysis_failed" : "analysis"
            _ = try await Self.insertEvent(connection, type: type, liveID: job.liveID,
                                           payloadSQL: Self.analysisObjectSQL(analysisID), logger: logger)

            guard let alert, let risk = record.riskScore else {
                return RecordedAnalysis(analysisID: analysisID, alertID: nil, suppressedByCooldown: false)
            }
            // At most one alert per live per cooldown, unless the risk rises.
            let recent = try await connection.query("""
                SELECT count(*)::int8 FROM alerts
                WHERE live_id = \(job.liveID) AND created_at > now() - make_interval(secs => \(alert.cooldown.asSeconds))
                  AND risk_score >= \(risk)
                """, logger: logger)
            for try await count in recent.decode(Int64.self) where count > 0 {
                return RecordedAnalysis(analysisID: analysisID, alertID: nil, suppressedByCooldown: true)
            }
            let alertRows = try await connection.query("""
                INSERT INTO alerts (analysis_id, live_id, username, risk_score, evidence_path, evidence_sha256)
                VALUES (\(analysisID), \(job.liveID), \(job.username), \(risk), \(alert.evidencePath)::text,
                        \(alert.evidenceSHA256)::text)
                RETURNING id
                """, logger: logger)
            var alertID: Int64?
            for try await id in alertRows.decode(Int64.self) { alertID = id }
            guard let alertID else { throw StoreError.failed("alert not created") }
            let eventID = try await Self.insertEvent(connection, type: "alert", liveID: job.liveID,
                                                     payloadSQL: Self.alertObjectSQL(where: "a.id = \(alertID)"), logger: logger)
            try await connection.query("UPDATE alerts SET event_id = \(eventID) WHERE id = \(alertID)", logger: logger)
            return RecordedAnalysis(analysisID: analysisID, alertID: alertID, suppressedByCooldown: false)
        }
    }

    // MARK: Alerts

    public func alerts(unackedOnly: Bool, limit: Int) async throws(StoreError) -> [String] {
        let filter = unackedOnly ? "a.acked_at IS NULL" : "true"
        return try await run("alerts.list") { client in
            let rows = try await client.query(PostgresQuery(unsafeSQL: """
                \(Self.alertObjectSQL(where: filter, withDeliveries: true)) ORDER BY a.created_at DESC, a.id DESC LIMIT \(limit)
                """))
            var objects = [String]()
            for try await object in rows.decode(String.self) { objects.append(object) }
            return objects
        }
    }

    public func alert(id: Int64) async throws(StoreError) -> String? {
        try await run("alerts.show") { client in
            let rows = try await client.query(PostgresQuery(unsafeSQL: Self.alertObjectSQL(where: "a.id = \(id)", withDeliveries: true)))
            for try await object in rows.decode(String.self) { return object }
            return nil
        }
    }

    public enum AckOutcome: Sendable { case acked, alreadyAcked(by: String?), notFound }

    public func ackAlert(id: Int64, by user: String) async throws(StoreError) -> AckOutcome {
        try await run("alerts.ack") { client in
            let rows = try await client.query("""
                WITH target AS (SELECT id, acked_at, acked_by FROM alerts WHERE id = \(id)),
                     done AS (UPDATE alerts SET acked_at = now(), acked_by = \(user)
                              WHERE id = \(id) AND acked_at IS NULL RETURNING id)
                SELECT (SELECT count(*) FROM done)::int8, (SELECT acked_by FROM target), (SELECT count(*) FROM target)::int8
                """)
            for try await (done, by, exists) in rows.decode((Int64, String?, Int64).self) {
                if exists == 0 { return .notFound }
                return done > 0 ? .acked : .alreadyAcked(by: by)
            }
            return .notFound
        }
    }

    /// An `alerts --json` object (and `alert` event body): INTERFACES.md's keys, plus the evidence
    /// a moderator checks (the quoted words, whether they were really said, the window's place).
    /// `withDeliveries` adds where the alert went (for tttctl; the event body itself has none).
    static func alertObjectSQL(where filter: String, withDeliveries: Bool = false) -> String {
        let deliveries = withDeliveries ? """
            || jsonb_build_object('deliveries', (
                SELECT coalesce(jsonb_agg(jsonb_build_object('channel', d.channel, 'state', d.state,
                                                             'attempts', d.attempts, 'error', d.last_error) ORDER BY d.channel), '[]')
                FROM deliveries d WHERE d.event_id = a.event_id))
            """ : ""
        return """
        SELECT (jsonb_build_object(
            'type', 'alert', 'id', a.id, 'live_id', a.live_id, 'username', a.username, 'risk_score', a.risk_score,
            'text', t.text, 'category', n.category, 'virality', n.virality, 'hateful', n.hateful, 'target', n.target,
            'hate_type', n.hate_type, 'justification', n.justification, 'citation', n.citation,
            'quote_verified', n.quote_verified, 'manipulation', n.manipulation, 'seq', n.seq,
            'start_s', t.start_s, 'end_s', t.end_s, 'title', l.title, 'model', n.model, 'prompt_sha256', n.prompt_sha256,
            'created_at', to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
            'acked', a.acked_at IS NOT NULL, 'acked_by', a.acked_by,
            'evidence_path', a.evidence_path, 'evidence_sha256', a.evidence_sha256) \(deliveries))::text
        FROM alerts a JOIN analyses n ON n.id = a.analysis_id JOIN transcripts t ON t.id = n.transcript_id
             LEFT JOIN lives l ON l.id = a.live_id
        WHERE \(filter)
        """
    }

    /// The `analysis` event body: INTERFACES.md's keys.
    static func analysisObjectSQL(_ analysisID: Int64) -> String {
        """
        SELECT jsonb_build_object(
            'type', CASE WHEN n.status = 'failed' THEN 'analysis_failed' ELSE 'analysis' END,
            'live_id', n.live_id, 'seq', n.seq, 'status', n.status, 'category', n.category, 'virality', n.virality,
            'hateful', n.hateful, 'target', n.target, 'hate_type', n.hate_type, 'justification', n.justification,
            'citation', n.citation, 'quote_verified', n.quote_verified, 'manipulation', n.manipulation,
            'risk_score', n.risk_score, 'error', n.error)::text
        FROM analyses n WHERE n.id = \(analysisID)
        """
    }

    /// A live's analyses in order, as `analysis` event objects.
    public func analyses(liveID: Int64) async throws(StoreError) -> [String] {
        try await run("analyses.list") { client in
            let rows = try await client.query(PostgresQuery(unsafeSQL: """
                SELECT jsonb_build_object(
                    'type', CASE WHEN n.status = 'failed' THEN 'analysis_failed' ELSE 'analysis' END,
                    'live_id', n.live_id, 'seq', n.seq, 'status', n.status, 'category', n.category,
                    'virality', n.virality, 'hateful', n.hateful, 'target', n.target, 'hate_type', n.hate_type,
                    'justification', n.justification, 'citation', n.citation, 'quote_verified', n.quote_verified,
                    'manipulation', n.manipulation, 'risk_score', n.risk_score, 'error', n.error)::text
                FROM analyses n WHERE n.live_id = \(liveID) ORDER BY n.seq
                """))
            var objects = [String]()
            for try await object in rows.decode(String.self) { objects.append(object) }
            return objects
        }
    }
}
