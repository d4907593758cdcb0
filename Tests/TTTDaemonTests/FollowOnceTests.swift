import Foundation
import Testing

/// tttd's event feed is woken both by NOTIFY and by a fallback tick every two seconds; the two must
/// never read from the same cursor and hand a follower an event twice.
@Suite("follow: each event once")
struct FollowOnceTests {
    static let events = 1500

    @Test("events committed one by one for seconds, each with a NOTIFY: a follower gets each once, in order")
    func eachEventOnce() async throws {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database, extraConfig: "transcription:\n  enabled: false\n")
        try await daemon.start()
        let follower = try RawClient(path: daemon.socketPath)
        let follow = #"{"jsonrpc":"2.0","id":1,"method":"follow","params":{"usernames":[],"all":true}}"#
        #expect(expectResult(try await follower.call(follow), id: 1) != nil)

        // One transaction per event, a few milliseconds apart: several fallback ticks fall while
        // NOTIFY wake-ups are being served. The last event (seq 0) closes the run.
        _ = try await database.psql("""
            DO $$ BEGIN
              FOR n IN 1..\(Self.events + 1) LOOP
                INSERT INTO events (type, username, payload)
                VALUES ('transcript', 'once', jsonb_build_object('type', 'transcript', 'username', 'once',
                                                                  'seq', CASE WHEN n > \(Self.events) THEN 0 ELSE n END));
                PERFORM pg_notify('tttd_events', '0');
                COMMIT;
                PERFORM pg_sleep(0.004);
              END LOOP;
            END $$;
            """)
        var seqs = [Int]()
        while true {
            guard let line = await follower.readLine(timeout: 60).text else { break }
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let params = object["params"] as? [String: Any], let seq = params["seq"] as? Int else { continue }
            if seq == 0 { break }
            seqs.append(seq)
        }
        let repeated = Dictionary(grouping: seqs, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        #expect(repeated.isEmpty, "delivered more than once: \(repeated.prefix(20)) (\(repeated.count) events)")
        #expect(seqs == Array(1...Self.events), "the follower got \(seqs.count) events for \(Self.events)")
        #expect(try await daemon.stop() == 0)
    }
}
