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
            let listener = Store(endpoint: store.endpoint, maximumConnections: 2, queryTimeout: .seconds(2), logger: logger)
            try await TestDatabase.running(listener) {
                let (listening, listeningNow) = AsyncStream.makeStream(of: Void.self)
                let listen = Task {
                    try await listener.listen("ttt_keepalive", keepAlive: .milliseconds(300)) { notifications in
                        listeningNow.yield()
                        for try await _ in notifications {}
                    }
                }
                for await _ in listening { break }

                let backend = try await listenBackend(store)
                #expect(kill(backend, SIGSTOP) == 0, "the test must be able to signal PostgreSQL's backends")
                defer { kill(backend, SIGCONT) }

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
                // The stopped connection was closed, not handed out again.
                try await listener.ping()
            }
        }
    }

    /// The backend of the (one) connection in LISTEN on this test's database.
    func listenBackend(_ store: Store) async throws -> Int32 {
        for try await pid in try await store.client.query("""
            SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'
            """).decode(Int32.self) {
            return pid
        }
        throw StoreTestError("no backend in LISTEN")
    }
}
