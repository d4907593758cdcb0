import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// How a follower's stream begins and ends: an account nobody watches is refused, an event whose
/// transaction commits late is still delivered, a follower that reads nothing neither stays
/// connected for ever nor holds up a stop, and tttctl says why its stream ended.
@Suite("follow: late commits and the end of a stream", .timeLimit(.minutes(3)))
struct FollowEndTests {
    static let follow = FollowOverflowTests.followAll

    @Test("follow @nobody --until-end for an account not watched exits 1 at once, saying it is not watched")
    func unwatchedAccount() async throws {
        let (_, daemon) = try await Self.daemon()
        // `timeout` bounds the wait: a follow that waits for events that cannot come ends 124.
        let result = try await runCommand("/usr/bin/timeout", [
            "20", TestEnvironment.tttctl, "follow", "@nobody", "--until-end", "--socket", daemon.socketPath,
        ])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("not watched"), "\(result)")
        #expect(try await daemon.stop() == 0)
    }

    @Test("an event whose transaction commits after a later one, and more than 10 s later, still reaches a follower")
    func lateCommit() async throws {
        let (database, daemon, follower) = try await FollowOnceTests.followAll()
        // The first event takes its id and stays invisible; the second, with the next id, commits.
        let held = try await OpenTransaction(database: database, Self.insert("late", seq: 1))
        _ = try await database.psql(Self.insert("late", seq: 2))
        #expect(try await Self.nextSeq(follower, timeout: 30) == 2)
        // The wait is the condition under test: the first transaction stays open longer than the
        // 10 s after which the feed used to pass over a missing id for good.
        try await Task.sleep(for: .seconds(12))
        try await held.commit()
        #expect(try await Self.nextSeq(follower, timeout: 15) == 1, "the late event never reached the follower")
        #expect(try await daemon.stop() == 0)
    }

    @Test("the first follower gets an event below the last id committed when it subscribed, once that event commits")
    func holeBeforeFirstFollower() async throws {
        let (database, daemon) = try await Self.daemon()
        let held = try await OpenTransaction(database: database, Self.insert("early", seq: 1))
        _ = try await database.psql(Self.insert("early", seq: 2))
        // Only now does anyone follow: the feed starts from the table as it is, event 1 still missing.
        let follower = try RawClient(path: daemon.socketPath)
        #expect(expectResult(try await follower.call(Self.follow), id: 1) != nil)
        try await held.commit()
        #expect(try await Self.nextSeq(follower, timeout: 20) == 1, "the event committed after subscribing never came")
        #expect(try await daemon.stop() == 0)
    }

    @Test("a follower that reads nothing and is cut off is disconnected, though it never reads again")
    func cutOffFollowerIsDisconnected() async throws {
        let (database, daemon) = try await Self.daemon()
        let slow = try await FollowOverflowTests.slowFollower(daemon)

        // Far more than the follower buffer (1000) on top of what the socket holds.
        _ = try await database.psql(Self.insertMany("stuck", count: 3000, bytes: 1000))
        try await daemon.waitForLog("the cut-off of the follower") { $0.contains("was cut off") }
        // tttd gives the notice 30 s to leave, then closes whether or not the follower read it.
        let closed = await Self.peerClosed(slow.fd, within: 60)
        #expect(closed, "tttd still holds the connection of a follower it cut off")
        withExtendedLifetime(slow) {}
        #expect(try await daemon.stop() == 0)
    }

    @Test("tttd stops at once, with exit 0, while a follower that reads nothing has a full socket")
    func stopWithStuckFollower() async throws {
        let (database, daemon) = try await Self.daemon()
        let slow = try await FollowOverflowTests.slowFollower(daemon)
        // A follower that reads: once it has the last event, the slow one was handed them all too.
        let reader = try RawClient(path: daemon.socketPath)
        #expect(expectResult(try await reader.call(Self.follow), id: 1) != nil)

        // 600 events of 4 KB: megabytes, more than any socket holds, yet fewer than the 1000 a
        // follower may fall behind before it is cut off.
        let count = 600
        _ = try await database.psql(Self.insertMany("stuck", count: count, bytes: 4000))
        var last = 0
        while last < count, let seq = try await Self.nextSeq(reader, timeout: 60) { last = seq }
        #expect(last == count, "the reading follower got events up to \(last) of \(count)")
        #expect(!daemon.log.contains("was cut off"), "the slow follower was cut off: the stop is not the one under test")

        daemon.signal(SIGTERM)
        let status = try await daemon.waitForExit(timeout: 15)
        #expect(status == 0, "\(daemon.log.suffix(3000))")
        // The slow follower's socket stays open until tttd has gone (its deinit would close it).
        withExtendedLifetime(slow) {}
    }

    @Test("tttctl follow is told that tttd is stopping: exit 3, saying so")
    func shuttingDownNotice() async throws {
        let (_, daemon) = try await Self.daemon()
        async let follow = daemon.ctl(["follow", "--all"])
        try await daemon.waitForLog("the follower's subscription") { $0.contains("follower subscribed") }
        #expect(try await daemon.stop() == 0)
        let finished = try await follow
        #expect(finished.status == 3, "\(finished)")
        #expect(finished.stderr.contains("tttd is stopping"), "\(finished)")
    }

    @Test("tttctl follow --json whose reader has left ends without crashing, even started with SIGPIPE ignored")
    func readerLeaves() async throws {
        let (database, daemon) = try await Self.daemon()
        // SIGPIPE ignored, as systemd units and some shells start programs (inherited through exec);
        // `head` leaves after the first line. The group reports tttctl's own status on stderr.
        let script = #"trap '' PIPE; { "$0" follow --all --json --socket "$1"; echo "tttctl exit $?" >&2; } | head -n 1"#
        let ended = DispatchSemaphore(value: 0)
        let pipeline = Task {
            defer { ended.signal() }
            // `timeout` (whole process group) bounds a tttctl that never ends.
            return try await runCommand("/usr/bin/timeout", ["60", "/bin/sh", "-c", script, TestEnvironment.tttctl, daemon.socketPath])
        }
        try await daemon.waitForLog("the follower's subscription") { $0.contains("follower subscribed") }
        // The first event goes to `head`, which leaves; a later one meets the closed pipe. When `head`
        // has left is not visible from here: an event at a time until the pipeline is over.
        var sent = 0
        var over = false
        while !over && sent < 10 {
            sent += 1
            _ = try await database.psql(Self.insert("piped", seq: sent))
            over = await offPool { ended.wait(timeout: .now() + 2) == .success }
        }
        let result = try await pipeline.value
        #expect(over, "tttctl still ran after \(sent) events: \(result)")
        #expect(result.stdout.contains(#""seq":1"#), "\(result)")
        #expect(!result.stderr.contains("Fatal error"), "\(result)")
        // Ended by the SIGPIPE, as any filter is (128 + 13).
        #expect(result.stderr.contains("tttctl exit 141"), "\(result)")
        #expect(try await daemon.stop() == 0)
    }

    // MARK: - Helpers

    /// tttd without transcription, nobody following yet.
    static func daemon() async throws -> (TestDatabase, DaemonProcess) {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database, extraConfig: "transcription:\n  enabled: false\n")
        try await daemon.start()
        return (database, daemon)
    }

    /// One followed event, announced as tttd's writers do (the NOTIFY goes out at commit).
    static func insert(_ username: String, seq: Int) -> String {
        """
        INSERT INTO events (type, username, payload)
        VALUES ('transcript', '\(username)', jsonb_build_object('type', 'transcript', 'username', '\(username)', 'seq', \(seq)));
        SELECT pg_notify('tttd_events', '0');
        """
    }

    /// `count` events of about `bytes` bytes each, seq 1…count, in one transaction.
    static func insertMany(_ username: String, count: Int, bytes: Int) -> String {
        """
        INSERT INTO events (type, username, payload)
        SELECT 'transcript', '\(username)',
               jsonb_build_object('type', 'transcript', 'username', '\(username)', 'seq', g, 'text', repeat('x', \(bytes)))
        FROM generate_series(1, \(count)) g;
        SELECT pg_notify('tttd_events', '0');
        """
    }

    /// The `seq` of the next event the follower receives; nil when none comes within `timeout` s.
    static func nextSeq(_ follower: RawClient, timeout: Double) async throws -> Int? {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let left = deadline.timeIntervalSinceNow
            guard left > 0, let line = await follower.readLine(timeout: left).text else { return nil }
            guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let params = object["params"] as? [String: Any], let seq = params["seq"] as? Int else { continue }
            return seq
        }
    }

    /// Whether the daemon closes its end of `fd` within `timeout` s, seen without reading a byte:
    /// POLLRDHUP (0x2000 on Linux) and POLLHUP do not depend on what is still unread.
    static func peerClosed(_ fd: Int32, within timeout: Double) async -> Bool {
        await offPool {
            let rdhup: Int16 = 0x2000
            let deadline = Date().addingTimeInterval(timeout)
            while true {
                let left = deadline.timeIntervalSinceNow
                if left <= 0 { return false }
                var poller = pollfd(fd: fd, events: rdhup, revents: 0)
                let ready = poll(&poller, 1, Int32(left * 1000) + 1)
                if ready < 0 && errno != EINTR { return false }
                if ready > 0 && poller.revents & (rdhup | Int16(POLLHUP)) != 0 { return true }
            }
        }
    }
}

/// A transaction left open on a psql session of its own: its event ids are taken at once, but what
/// it wrote stays invisible to every other session (the event feed's among them) until `commit()`.
/// Dropped without a commit, it is rolled back (psql sees the end of its input).
final class OpenTransaction: @unchecked Sendable {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let errors = Pipe()
    private var finished = false

    /// Runs `BEGIN` then `sql`, and returns once `sql` has written (the transaction holds its ids).
    init(database: TestDatabase, _ sql: String) async throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        process.arguments = [database.url, "-v", "ON_ERROR_STOP=1", "-AtqX"]
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        // psql runs its input in order: the echo comes out once `sql` is done (or psql ends on an error).
        try input.fileHandleForWriting.write(contentsOf: Data("BEGIN;\n\(sql)\n\\echo written\n".utf8))
        let written = await offPool { [output] in
            var said = Data()
            while !String(decoding: said, as: UTF8.self).contains("written\n") {
                let more = output.fileHandleForReading.availableData
                if more.isEmpty { return false }
                said.append(more)
            }
            return true
        }
        guard written else {
            finished = true
            let said = await offPool { [errors] in String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            throw HarnessError("psql ended before the open transaction wrote: \(said)")
        }
    }

    func commit() async throws {
        finished = true
        let writer = input.fileHandleForWriting
        try writer.write(contentsOf: Data("COMMIT;\n\\q\n".utf8))
        try writer.close()
        let status = await exitStatus(of: process)
        guard status == 0 else {
            let said = await offPool { [errors] in String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
            throw HarnessError("psql ended with \(status) at COMMIT: \(said)")
        }
    }

    deinit {
        if !finished { try? input.fileHandleForWriting.close() }
    }
}
