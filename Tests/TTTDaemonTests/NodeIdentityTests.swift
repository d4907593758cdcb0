import Foundation
import Glibc
import Testing

/// Two tttd with one node id — machines cloned with one host name — must not both run: the second
/// would free the first's leases at start and renew them as its own. The other run is played by
/// psql beating on the node's row as a running tttd does.
@Suite("one run per node id", .timeLimit(.minutes(3)))
struct NodeIdentityTests {
    @Test("a tttd whose node id another run is beating under refuses to start and frees nothing; after that run's crash it starts, after its own at once")
    func secondRunRefused() async throws {
        let database = try await TestDatabase.create()
        let first = try DaemonProcess(database: database)
        try await first.start()
        #expect(try await first.ctl(["accounts", "add", "alice"]).status == 0)
        #expect(try await first.stop() == 0)
        let node = try await database.psql("SELECT node_id FROM nodes")
        // Stopped cleanly: no run is left on the row.
        #expect(try await database.psql("SELECT run_token IS NULL FROM nodes") == "t")

        // Another run, alive: its token on the row, a beat every second, and an account leased to it.
        _ = try await database.psql("""
            UPDATE nodes SET run_token = 'the other run', heartbeat_at = now();
            UPDATE accounts SET lease_owner = '\(node)', lease_expires_at = now() + interval '10 minutes';
            """)
        let beating = Task {
            try await database.psql("""
                DO $$ BEGIN
                    FOR i IN 1..120 LOOP
                        UPDATE nodes SET heartbeat_at = now();
                        COMMIT;
                        PERFORM pg_sleep(0.5);
                    END LOOP;
                END $$;
                """)
        }
        defer { beating.cancel() }
        let second = try DaemonProcess(database: database, directory: first.directory)
        try await second.start(waitForReady: false)
        let code = try await second.waitForExit(timeout: 60)
        #expect(code == 1, "\(second.log)")
        #expect(second.log.contains("another tttd is running as node \(node)"), "\(second.log)")
        #expect(!second.notify.messages.joined(separator: "\n").contains("READY=1"))
        // The other run's lease and token are as it left them.
        #expect(try await database.psql("SELECT lease_owner = '\(node)' AND lease_expires_at > now() FROM accounts") == "t")
        #expect(try await database.psql("SELECT run_token FROM nodes") == "the other run")

        // The other run dies without a clean stop: its last beat is recent, but no beat follows.
        _ = try await database.psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'DO $$ BEGIN%' AND pid <> pg_backend_pid()")
        _ = try? await beating.value
        let third = try DaemonProcess(database: database, directory: first.directory)
        try await third.start()
        #expect(third.log.contains("to tell a restart from a second tttd"), "\(third.log)")
        // Its previous run's ten-minute lease is freed (a check of its own leases the account a minute), and the row is this run's.
        #expect(try await database.psql("SELECT lease_expires_at IS NULL OR lease_expires_at < now() + interval '2 minutes' FROM accounts") == "t")
        #expect(try await database.psql("SELECT run_token <> 'the other run' FROM nodes") == "t")

        // Its own crash: the run on the row is the one this machine noted, and the restart does not wait.
        third.signal(SIGKILL)
        #expect(try await third.waitForExit() == 128 + SIGKILL)
        let fourth = try DaemonProcess(database: database, directory: first.directory)
        try await fourth.start()
        #expect(!fourth.log.contains("to tell a restart from a second tttd"), "\(fourth.log)")
        #expect(try await fourth.stop() == 0)
    }
}
