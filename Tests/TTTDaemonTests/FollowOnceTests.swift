import Foundation
import Testing

/// tttd's event feed is woken both by NOTIFY and by a periodic read (every two seconds while it has
/// reason to doubt NOTIFY, every ten otherwise); the two must never read from the same cursor and
/// hand a follower an event twice, and an event no NOTIFY announced must still arrive.
@Suite("follow: each event once")
struct FollowOnceTests {
    static let events = 1500

    @Test("events committed one by one for seconds, each with a NOTIFY: a follower gets each once, in order")
    func eachEventOnce() async throws {
        let (database, daemon, follower) = try await Self.followAll()

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

    @Test("an event committed without a NOTIFY still reaches a follower, by the periodic read")
    func unannouncedEvent() async throws {
        let (database, daemon, follower) = try await Self.followAll()

        _ = try await database.psql("""
            INSERT INTO events (type, username, payload)
            VALUES ('transcript', 'quiet', jsonb_build_object('type', 'transcript', 'username', 'quiet', 'seq', 7));
            """)
        // Within the read's period (10 s), with room for a loaded machine.
        let line = await follower.readLine(timeout: 40).text
        let object = try line.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let params = object?["params"] as? [String: Any]
        #expect(params?["username"] as? String == "quiet" && params?["seq"] as? Int == 7, "got \(line ?? "nothing")")
        #expect(try await daemon.stop() == 0)
    }

    /// tttd without transcription, and a client that follows every account.
    static func followAll() async throws -> (TestDatabase, DaemonProcess, RawClient) {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database, extraConfig: "transcription:\n  enabled: false\n")
        try await daemon.start()
        let follower = try RawClient(path: daemon.socketPath)
        let follow = #"{"jsonrpc":"2.0","id":1,"method":"follow","params":{"usernames":[],"all":true}}"#
        #expect(expectResult(try await follower.call(follow), id: 1) != nil)
        return (database, daemon, follower)
    }
}
