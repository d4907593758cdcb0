import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A PostgreSQL cluster of the test's own (scripts/pg-private), so that stopping and restarting it
/// disturbs no other test. Stopped when the value goes away.
final class PrivateCluster: @unchecked Sendable {
    let directory: TemporaryDirectory
    let dataDirectory: String
    let port: Int
    let url: String

    private static var script: String { TestEnvironment.repoRoot.appendingPathComponent("scripts/pg-private").path }

    private init(directory: TemporaryDirectory, port: Int, url: String) {
        self.directory = directory
        self.dataDirectory = directory.file("pg")
        self.port = port
        self.url = url
    }

    /// Initialises and starts a cluster on a free port; its `tttd` database exists.
    static func start() async throws -> PrivateCluster {
        let directory = try TemporaryDirectory()
        let port = try freePort()
        let result = try await run(["start", directory.file("pg"), "\(port)"])
        guard result.status == 0 else { throw HarnessError("pg-private start failed: \(result)") }
        return PrivateCluster(directory: directory, port: port,
                              url: result.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The cluster's `tttd` database, as the harness's type (its psql helper works on it).
    var database: TestDatabase { TestDatabase(name: "tttd", url: url) }

    func stop() async throws {
        let result = try await Self.run(["stop", dataDirectory])
        guard result.status == 0 else { throw HarnessError("pg-private stop failed: \(result)") }
    }

    /// Starts it again (same port); returns when it accepts connections (pg_ctl -w).
    func startAgain() async throws {
        let result = try await Self.run(["start", dataDirectory, "\(port)"])
        guard result.status == 0 else { throw HarnessError("pg-private start failed: \(result)") }
    }

    /// `pg_ctl restart -m fast -w`: every connection is cut.
    func restart() async throws {
        let result = try await Self.run(["restart", dataDirectory])
        guard result.status == 0 else { throw HarnessError("pg-private restart failed: \(result)") }
    }

    /// Runs pg-private so that the server it starts inherits no descriptor of ours beyond 0–2.
    /// Foundation's Process (Linux) learns that a child ended when a socket it passes to the child
    /// closes; a postgres daemonised by `pg_ctl start` would keep that socket open for its whole life
    /// and `waitUntilExit` would never return. So a subshell closes every descriptor above 2 and
    /// runs pg-private, while the outer shell (the direct child) keeps them until the script ends.
    private static func run(_ arguments: [String]) async throws -> CommandResult {
        var environment = ProcessInfo.processInfo.environment
        environment["PG_BIN"] = TestEnvironment.pgBin
        let closeInherited = #"""
            fds=(); for p in /proc/$$/fd/*; do n=${p##*/}; [ "$n" -gt 2 ] && fds+=("$n"); done
            ( for n in "${fds[@]}"; do eval "exec $n>&-"; done; exec "$@" )
            """#
        return try await runCommand("/bin/bash", ["-c", closeInherited, "pg-private", script] + arguments, environment: environment)
    }

    deinit {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.script)
        process.arguments = ["stop", dataDirectory]
        var environment = ProcessInfo.processInfo.environment
        environment["PG_BIN"] = TestEnvironment.pgBin
        process.environment = environment
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        if (try? process.run()) != nil { _ = waitForEnd(of: process) }
    }

    /// A TCP port nobody uses now: bind 127.0.0.1:0 and read what the kernel chose.
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw HarnessError("bind 127.0.0.1:0 failed: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

// One test at a time: timings (the < 15 s bound) should not depend on how many clusters start at once.
@Suite("database outages", .serialized)
struct DatabaseOutageTests {
    @Test("PostgreSQL restarted, then stopped, then started under a running tttd")
    func restartAndStop() async throws {
        let cluster = try await PrivateCluster.start()
        let daemon = try DaemonProcess(database: cluster.database)
        try await daemon.start()
        let alice = try await daemon.ctl(["accounts", "add", "alice"])
        #expect(alice.status == 0, "\(alice)")

        // Restart: tttctl status answers during and after; tttd keeps running.
        async let restarted: Void = cluster.restart()
        let during = try await daemon.ctl(["status", "--json"])
        try await restarted
        #expect(during.status == 0, "\(during)")
        #expect(daemon.process.isRunning, "tttd exited when PostgreSQL restarted:\n\(daemon.log)")
        let after = try await daemon.ctl(["status", "--json"])
        #expect(after.status == 0, "\(after)")
        // The pool finds its connections dead and reconnects with a backoff of its own; nothing tells us
        // when it is done, so the add is retried until it succeeds, for 30 s at most.
        let bob = try await retryUntilSuccess(seconds: 30) { try await daemon.ctl(["accounts", "add", "bob"]) }
        #expect(bob.status == 0, "accounts add never worked again after a restart: \(bob)\n\(daemon.log)")

        // Stopped: an add is refused with database_unavailable, in bounded time; status still answers.
        try await cluster.stop()
        let clock = ContinuousClock()
        var started = clock.now
        let carol = try await daemon.ctl(["accounts", "add", "carol"])
        var elapsed = clock.now - started
        #expect(carol.status == 1, "\(carol)")
        #expect(carol.stderr.contains("database is unavailable"), "\(carol)")
        #expect(elapsed < .seconds(15), "accounts add took \(elapsed) with the database down")

        let client = try RawClient(path: daemon.socketPath)
        started = clock.now
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":1,"method":"accounts.add","params":{"usernames":["carol"],"labels":[]}}"#, timeout: 30),
                    "database_unavailable", id: 1)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":2,"method":"accounts.list"}"#, timeout: 30),
                    "database_unavailable", id: 2)
        elapsed = clock.now - started
        #expect(elapsed < .seconds(30), "two requests took \(elapsed) with the database down")

        started = clock.now
        let status = try await daemon.ctl(["status", "--json"])
        #expect(clock.now - started < .seconds(5), "status must not wait for the database")
        #expect(status.status == 0, "\(status)")
        let state = (try? status.json() as? [String: Any])?["database"] as? String
        #expect(state != nil && state != "ok", "status must say the database is not ok: \(status)")
        #expect(daemon.process.isRunning, "tttd exited with the database down:\n\(daemon.log)")

        // Back: the add works again (retried for the same reason as above).
        try await cluster.startAgain()
        let back = try await retryUntilSuccess(seconds: 30) { try await daemon.ctl(["accounts", "add", "carol"]) }
        #expect(back.status == 0, "accounts add never worked again after the database came back: \(back)\n\(daemon.log)")
        let list = try await daemon.ctl(["accounts", "list", "--json"])
        #expect((try list.json() as? [[String: Any]])?.compactMap { $0["username"] as? String } == ["alice", "bob", "carol"], "\(list)")
        #expect(try await cluster.database.psql("SELECT count(*) FROM events WHERE type = 'account_added'") == "3")
        let recovered = try await daemon.ctl(["status", "--json"])
        #expect((try recovered.json() as? [String: Any])?["database"] as? String == "ok", "\(recovered)")
        #expect(try await daemon.stop() == 0)
        try await cluster.stop()
    }

    @Test("database down at start: tttd waits (STATUS= says so), then READY=1 once it is up, and works")
    func downAtStart() async throws {
        let cluster = try await PrivateCluster.start()
        try await cluster.stop()
        let daemon = try DaemonProcess(database: cluster.database)
        try await daemon.start(waitForReady: false)
        let first = try await daemon.notify.waitForPrefix("STATUS=waiting for the database", timeout: 60)
        #expect(first.contains("retry 1"), "\(first)")
        // It retries rather than giving up.
        let second = try await daemon.notify.waitForLine(timeout: 60) { $0.hasPrefix("STATUS=waiting for the database") && $0.contains("retry 2") }
        #expect(second.contains("retry 2"), "\(second)")
        #expect(daemon.process.isRunning, "tttd exited instead of waiting:\n\(daemon.log)")
        #expect(!daemon.notify.messages.joined(separator: "\n").contains("READY=1"), "READY=1 before the database was there")

        try await cluster.startAgain()
        try await daemon.notify.waitFor("READY=1", timeout: 90)
        let added = try await daemon.ctl(["accounts", "add", "alice"])
        #expect(added.status == 0, "\(added)\n\(daemon.log)")
        #expect(try await cluster.database.psql("SELECT version FROM schema_migrations ORDER BY version LIMIT 1") == "1")
        let status = try await daemon.ctl(["status", "--json"])
        #expect((try status.json() as? [String: Any])?["database"] as? String == "ok", "\(status)")
        #expect(try await daemon.stop() == 0)
        try await cluster.stop()
    }

    @Test("SIGTERM while waiting for the database: STOPPING=1 and exit 0")
    func stopWhileWaiting() async throws {
        let cluster = try await PrivateCluster.start()
        try await cluster.stop()
        let daemon = try DaemonProcess(database: cluster.database)
        try await daemon.start(waitForReady: false)
        _ = try await daemon.notify.waitForPrefix("STATUS=waiting for the database", timeout: 60)
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: 30) == 0, "\(daemon.log)")
        #expect(!daemon.notify.messages.joined(separator: "\n").contains("READY=1"))
    }

    @Test("two tttd starting at once on one fresh database: both migrate without error and reach READY=1",
          arguments: 1...3)
    func concurrentMigrations(round: Int) async throws {
        let database = try await TestDatabase.create()
        // Two directories, so two sockets.
        let first = try DaemonProcess(database: database)
        let second = try DaemonProcess(database: database)
        async let a: Void = first.start()
        async let b: Void = second.start()
        try await a
        try await b
        let counts = try await database.psql("SELECT version || ':' || count(*) FROM schema_migrations GROUP BY version ORDER BY version")
        #expect(!counts.isEmpty)
        for line in counts.split(separator: "\n") {
            #expect(line.hasSuffix(":1"), "a migration applied twice: \(counts)")
        }
        #expect(try await database.psql("SELECT count(*) = count(DISTINCT version) FROM schema_migrations") == "t")
        for daemon in [first, second] {
            #expect(!daemon.log.contains("waiting for the database"), "a migration failed and was retried:\n\(daemon.log)")
        }
        let migrated = [first, second].filter { $0.log.contains("database schema migrated") }.count
        #expect(migrated == 1, "exactly one of the two applies the schema; \(migrated) did")
        // Both serve.
        #expect(try await first.ctl(["accounts", "add", "alice"]).status == 0)
        let list = try await second.ctl(["accounts", "list", "--json"])
        #expect((try list.json() as? [[String: Any]])?.first?["username"] as? String == "alice", "\(list)")
        #expect(try await first.stop() == 0)
        #expect(try await second.stop() == 0)
    }

    @Test("tttd waiting for another node's long migration says so, asks systemd for more start-up time, and reaches READY=1 without a retry")
    func waitsForLongMigration() async throws {
        let database = try await TestDatabase.create()
        let otherNode = try await OtherNodeMigrating.start(on: database)
        let daemon = try DaemonProcess(database: database)
        try await daemon.start(waitForReady: false)
        // Past the 5-s query deadline that used to cut the migration off and retry it.
        try await daemon.waitForLog("that it is still migrating", timeout: 60) { $0.contains("still migrating the database schema") }
        #expect(daemon.log.contains("waiting for another tttd to finish migrating it"), "\(daemon.log)")
        let status = try await daemon.notify.waitForPrefix("STATUS=migrating the database schema")
        #expect(status.contains("waiting for another tttd"), "\(status)")
        _ = try await daemon.notify.waitForPrefix("EXTEND_TIMEOUT_USEC=")
        try await otherNode.finish()
        try await daemon.notify.waitFor("READY=1")
        #expect(!daemon.log.contains("waiting for the database"), "the migration was cut off and retried:\n\(daemon.log)")
        #expect(daemon.log.contains("database schema migrated"), "\(daemon.log)")
        #expect(try await daemon.stop() == 0)
    }

    @Test("SIGTERM while tttd waits for another node's migration: it gives its migration up, exits at once, and the server drops its session")
    func stopDuringMigration() async throws {
        let database = try await TestDatabase.create()
        let otherNode = try await OtherNodeMigrating.start(on: database)
        let daemon = try DaemonProcess(database: database)
        try await daemon.start(waitForReady: false)
        try await waitUntil("tttd waits for the lock", database: database, "(\(OtherNodeMigrating.waiters)) = 1")
        daemon.signal(SIGTERM)
        #expect(try await daemon.waitForExit(timeout: 30) == 0, "\(daemon.log)")
        #expect(!daemon.notify.messages.joined(separator: "\n").contains("READY=1"))
        #expect(!daemon.log.contains("waiting for the database"), "the stop was reported as an outage:\n\(daemon.log)")
        try await waitUntil("the server drops tttd's session", database: database, "(\(OtherNodeMigrating.waiters)) = 0")
        try await otherNode.finish()
        #expect(try await database.psql("SELECT to_regclass('schema_migrations') IS NULL") == "t")
    }


    @Test("a database whose schema is newer than this tttd: it refuses to start (exit 1) instead of waiting forever")
    func schemaTooNew() async throws {
        let database = try await TestDatabase.create()
        _ = try await database.psql("""
            CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
            INSERT INTO schema_migrations (version, name) VALUES (999, 'from a newer tttd');
            """)
        let daemon = try DaemonProcess(database: database)
        try await daemon.start(waitForReady: false)
        let code = try await daemon.waitForExit(timeout: 60)
        #expect(code == 1, "\(daemon.log)")
        #expect(daemon.log.contains("999"), "the log names the database's schema version:\n\(daemon.log)")
        #expect(!daemon.log.contains("waiting for the database"), "retrying cannot help a newer schema:\n\(daemon.log)")
        #expect(!daemon.notify.messages.joined(separator: "\n").contains("READY=1"))
    }

    /// Runs `attempt` until it exits 0 or `seconds` pass; returns the last result. Only for waiting on
    /// something that sends no event (the pool reconnecting); 250 ms between tries.
    private func retryUntilSuccess(seconds: Double, _ attempt: () async throws -> CommandResult) async throws -> CommandResult {
        let deadline = Date().addingTimeInterval(seconds)
        var result = try await attempt()
        while result.status != 0 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(250))
            result = try await attempt()
        }
        return result
    }
}

/// Waits until `sql` answers `t` (the state of another session, which nothing announces).
private func waitUntil(_ what: String, database: TestDatabase, _ sql: String) async throws {
    let answer = try await database.psql("""
        DO $$ BEGIN
            FOR i IN 1..600 LOOP EXIT WHEN (\(sql)); PERFORM pg_sleep(0.05); END LOOP;
        END $$;
        SELECT (\(sql));
        """)
    guard answer == "t" else { throw HarnessError("\(what): not within 30 s") }
}

/// Another node migrating: a session holding tttd's migration lock on `database` until `finish()`
/// (or two minutes, should the test fail before it gets there).
private struct OtherNodeMigrating {
    /// How many sessions of the database wait for an advisory lock (tttd, for the migration's).
    static let waiters = """
        SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """

    let database: TestDatabase
    let session: Task<String, any Error>

    static func start(on database: TestDatabase) async throws -> OtherNodeMigrating {
        _ = try await database.psql("CREATE TABLE test_gate ()")
        let session = Task {
            try await database.psql("""
                SELECT pg_advisory_lock(1953789028);
                DO $$ BEGIN
                    FOR i IN 1..2400 LOOP EXIT WHEN EXISTS (SELECT FROM test_gate); PERFORM pg_sleep(0.05); END LOOP;
                END $$;
                """)
        }
        try await waitUntil("the other session holds the lock", database: database, """
            SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """)
        return OtherNodeMigrating(database: database, session: session)
    }

    /// Opens the gate: the session ends, and the lock is free.
    func finish() async throws {
        _ = try await database.psql("INSERT INTO test_gate DEFAULT VALUES")
        _ = try await session.value
    }
}
