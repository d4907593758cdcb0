import Foundation
import Logging
import PostgresNIO
import Testing
@testable import TTTStore

/// A LISTEN connection whose other end stops answering without closing — as one a NAT or a firewall
/// has forgotten — is found out by the keep-alive, against a real PostgreSQL whose backend for that
/// connection is stopped (SIGSTOP: its socket stays open, nothing comes back).
@Suite("LISTEN keep-alive", .timeLimit(.minutes(2)))
struct ListenKeepAliveTests {
    @Test("listen ends with an error when its connection stops answering, and the pool goes on with a working one")
    func silentConnectionEndsListen() async throws {
        try await TestDatabase.withStore { store in
            var logger = Logger(label: "test")
            logger.logLevel = .critical
            // The backends already there are the test's own store's.
            let before = try await backends(store)
            let listener = Store(endpoint: store.endpoint, maximumConnections: 2, queryTimeout: .seconds(5), logger: logger)
            try await TestDatabase.running(listener) {
                let (listening, listeningNow) = AsyncStream.makeStream(of: Void.self)
                let listen = Task {
                    try await listener.listen("ttt_keepalive", keepAlive: .seconds(1)) { notifications in
                        listeningNow.yield()
                        for try await _ in notifications {}
                    }
                }
                for await _ in listening { break }

                let backend = try await listenBackend(store, excluding: before)
                #expect(kill(backend, SIGSTOP) == 0, "the test must be able to signal PostgreSQL's backends")
                var stopped = true
                defer { if stopped { kill(backend, SIGCONT) } }

                // Bounded so that a listen waiting for ever fails the test, not the suite's time limit.
                let watchdog = Task {
                    try await Task.sleep(for: .seconds(30))
                    listen.cancel()
                }
                let outcome: String
                do {
                    try await listen.value
                    outcome = "listen returned without an error"
                } catch {
                    outcome = "\(error)"
                }
                watchdog.cancel()
                #expect(outcome.contains("LISTEN keep-alive"), "\(outcome) (cancelled if the connection still looked alive after 30 s)")
                // The connection was closed, not handed back to the pool: once it runs again, the
                // backend finds its client gone and ends.
                kill(backend, SIGCONT)
                stopped = false
                try await AnswerGuardTests().waitUntil("the stopped backend's connection is closed") {
                    try await !backends(store).contains(backend)
                }
                try await listener.ping()
            }
        }
    }

    func backends(_ store: Store) async throws -> Set<Int32> {
        var pids = Set<Int32>()
        for try await pid in try await store.client.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
        ).decode(Int32.self) {
            pids.insert(pid)
        }
        return pids
    }

    /// The listener's backend in LISTEN: a new one whose last statement was the LISTEN or a keep-alive
    /// (the pool's other connection has run nothing).
    func listenBackend(_ store: Store, excluding before: Set<Int32>) async throws -> Int32 {
        var found = [Int32]()
        for try await pid in try await store.client.query("""
            SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND (query ILIKE 'LISTEN%' OR query = 'SELECT 1')
            """).decode(Int32.self) where !before.contains(pid) {
            found.append(pid)
        }
        guard found.count == 1, let pid = found.first else { throw StoreTestError("backends in LISTEN: \(found)") }
        return pid
    }
}
