import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `tttctl follow` must never slow tttd down: a follower that stops reading is cut off.
@Suite("follow: a follower that stops reading")
struct FollowOverflowTests {
    static let events = 3000
    static let followAll = #"{"jsonrpc":"2.0","id":1,"method":"follow","params":{"usernames":[],"all":true}}"#

    /// A follower of every event that never reads, with a small receive buffer: the daemon's side
    /// fills after a few events instead of a few hundred.
    static func slowFollower(_ daemon: DaemonProcess) async throws -> RawClient {
        let slow = try RawClient(path: daemon.socketPath)
        var size: Int32 = 4096
        setsockopt(slow.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        #expect(expectResult(try await slow.call(followAll), id: 1) != nil)
        return slow
    }

    @Test("is cut off with a too_slow message while a reading follower gets every event and tttd keeps answering")
    func slowFollowerIsCutOff() async throws {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database, extraConfig: "transcription:\n  enabled: false\n")
        try await daemon.start()
        let slow = try await Self.slowFollower(daemon)
        let fast = try RawClient(path: daemon.socketPath)
        #expect(expectResult(try await fast.call(Self.followAll), id: 1) != nil)

        // Events of 1 KB each, committed in batches and announced as tttd's own writers do; the
        // next batch comes when the reading follower has the previous one, so it never falls behind.
        var seqs = [Int]()
        for batch in stride(from: 1, through: Self.events, by: 200) {
            _ = try await database.psql("""
                INSERT INTO events (type, username, payload)
                SELECT 'transcript', 'slowpoke',
                       jsonb_build_object('type', 'transcript', 'username', 'slowpoke', 'seq', g, 'text', repeat('x', 1000))
                FROM generate_series(\(batch), \(batch + 199)) g;
                SELECT pg_notify('tttd_events', '0');
                """)
            while seqs.count < batch + 199 {
                guard let line = await fast.readLine(timeout: 60).text else { break }
                guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let params = object["params"] as? [String: Any], let seq = params["seq"] as? Int else { continue }
                seqs.append(seq)
            }
        }
        #expect(seqs == Array(1...Self.events), "the reading follower got \(seqs.count) of \(Self.events) events")

        // tttd still answers while the slow follower holds its connection.
        let other = try RawClient(path: daemon.socketPath)
        expectStatus(try await other.call(statusRequest(id: 2)), id: 2)

        // The slow follower now reads what was kept for it, then the notice, then the end.
        var received = 0
        var last = ""
        while true {
            let read = await slow.readLine(timeout: 30)
            guard let line = read.text else {
                #expect(read.isClosed, "the slow follower's connection should end after the notice, got \(read)")
                break
            }
            last = line
            if line.contains(#""method":"event""#) { received += 1 }
        }
        #expect(received < Self.events, "the slow follower was not cut off: it got every event")
        #expect(last.contains(#""code":"too_slow""#), "last line: \(last.prefix(200))")
        #expect(try await daemon.stop() == 0)
    }
}
