import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// retention.*: old rows and their evidence files go; what an unacknowledged alert refers to stays,
/// and so do events still being delivered.
@Suite("retention")
struct RetentionTests {
    @Test("the purge removes old rows and their clips, keeps unacknowledged alerts' windows and pending deliveries")
    func purge() async throws {
        let database = try await TestDatabase.create()
        let evidence = FileManager.default.temporaryDirectory.appendingPathComponent("ttt-retention-\(UUID())")
        try FileManager.default.createDirectory(at: evidence, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: evidence) }
        let ackedClip = evidence.appendingPathComponent("acked.wav").path
        let unackedClip = evidence.appendingPathComponent("unacked.wav").path
        for path in [ackedClip, unackedClip] { FileManager.default.createFile(atPath: path, contents: Data("RIFF".utf8)) }

        // The schema first (tttd migrates it), then history planted 40 and 1 days back.
        let first = try DaemonProcess(database: database, extraConfig: "transcription:\n  enabled: false\n")
        try await first.start()
        #expect(try await first.stop() == 0)
        _ = try await database.psql("""
            INSERT INTO lives (id, username, room_id, started_at, ended_at, status) VALUES
                (1, 'old', 'r1', now() - interval '40 days', now() - interval '40 days', 'ended');
            INSERT INTO transcripts (id, live_id, seq, start_s, end_s, text, created_at) VALUES
                (1, 1, 0, 0, 10, 'old words, alert acknowledged', now() - interval '40 days'),
                (2, 1, 1, 10, 20, 'old words, alert not acknowledged', now() - interval '40 days'),
                (3, 1, 2, 20, 30, 'old words, no alert', now() - interval '40 days'),
                (4, 1, 3, 30, 40, 'recent words', now() - interval '1 day');
            INSERT INTO analyses (id, transcript_id, live_id, seq, status, model, prompt_sha256, text_hash, created_at)
            SELECT id, id, 1, seq, 'ok', 'm', 'p', 'h' || id, created_at FROM transcripts;
            INSERT INTO events (id, type, live_id, username, payload, created_at) VALUES
                (1, 'alert', 1, 'old', '{}', now() - interval '40 days'),
                (2, 'alert', 1, 'old', '{}', now() - interval '40 days'),
                (3, 'live_started', 1, 'old', '{}', now() - interval '40 days'),
                (4, 'live_ended', 1, 'old', '{}', now() - interval '40 days');
            INSERT INTO alerts (id, analysis_id, live_id, username, risk_score, created_at, acked_at, acked_by, evidence_path, evidence_sha256, event_id) VALUES
                (1, 1, 1, 'old', 0.9, now() - interval '40 days', now() - interval '39 days', 'alice', '\(ackedClip)', 'x', 1),
                (2, 2, 1, 'old', 0.9, now() - interval '40 days', NULL, NULL, '\(unackedClip)', 'y', 2);
            INSERT INTO deliveries (event_id, channel, state) VALUES (3, 'webhook:ops', 'pending'), (4, 'webhook:ops', 'delivered');
            SELECT setval(pg_get_serial_sequence('events', 'id'), 10);
            """)

        let daemon = try DaemonProcess(database: database, extraConfig: """
            transcription:
              enabled: false
            retention:
              transcripts: 30d
              analyses: 30d
              evidence: 30d
              events: 30d
            """)
        try await daemon.start()
        // The first purge runs 10 s after start and logs what it removed, kind by kind (the log is
        // the only sign of it, so it is polled, with a deadline).
        let deadline = Date().addingTimeInterval(60)
        while !daemon.log.contains("retention: removed old transcripts") && Date() < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        let line = daemon.log.split(separator: "\n").first { $0.contains("retention: removed old transcripts") } ?? ""
        #expect(line.contains("rows=2") && line.contains("evidence_files=0"), "\(daemon.log.suffix(2000))")

        #expect(try await database.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM transcripts") == "2,4",
                "the unacknowledged alert's window and the recent one stay")
        #expect(try await database.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM analyses") == "2,4")
        #expect(try await database.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM alerts") == "2")
        #expect(try await database.psql("SELECT evidence_path IS NOT NULL FROM alerts WHERE id = 2") == "t")
        #expect(!FileManager.default.fileExists(atPath: ackedClip), "the acknowledged alert's clip went with it")
        #expect(FileManager.default.fileExists(atPath: unackedClip), "the unacknowledged alert's clip stays")
        #expect(try await database.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM events WHERE id < 10") == "2,3",
                "the unacknowledged alert's event and the one still being delivered stay")
        #expect(try await daemon.stop() == 0)
    }
}
