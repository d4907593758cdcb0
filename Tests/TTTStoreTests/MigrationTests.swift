import Logging
import PostgresNIO
import Synchronization
import Testing
@testable import TTTStore

/// The schema migration has no deadline of its own (a step on months of history may take minutes),
/// gives up on a table another session holds, and rolls back when its task is cancelled.
@Suite("schema migration", .timeLimit(.minutes(2)))
struct MigrationTests {
    /// The advisory lock tttd migrates under, held by a session of the test (another tttd migrating).
    static let lock = Store.migrationLock
    let logger = Logger(label: "test")

    @Test("a migration waiting for another node's longer than the query deadline is not cut off, and says what it waits for")
    func waitsPastDeadline() async throws {
        try await TestDatabase.withStore(migrated: false) { store in
            // A deadline the wait outlasts many times over: the migration must not be held to it.
            let hurried = Store(endpoint: store.endpoint, maximumConnections: 1, queryTimeout: .milliseconds(200),
                                logger: store.logger)
            try await store.client.withConnection { holder in
                try await holder.query("SELECT pg_advisory_lock(\(Self.lock))", logger: logger)
                let (steps, step) = AsyncStream.makeStream(of: Store.MigrationStep.self)
                let migration = Task { try await hurried.migrate(progress: { step.yield($0) }) }
                var iterator = steps.makeAsyncIterator()
                #expect(await iterator.next() == .waitingForOtherNode)
                // Five deadlines pass while the other node holds the lock.
                try await Task.sleep(for: .seconds(1))
                try await holder.query("SELECT pg_advisory_unlock(\(Self.lock))", logger: logger)
                let applied = try await migration.value
                #expect(applied == Array(1...Store.schemaVersion))
                #expect(await iterator.next() == .applying(version: 1, name: Migrations.all[0].name))
            }
        }
    }

    @Test("a step blocked by a table another session holds gives up after the lock timeout, says why, and applies nothing")
    func lockTimeout() async throws {
        try await TestDatabase.withStore(migrated: false) { store in
            try await store.client.query("""
                CREATE TABLE schema_migrations (
                    version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
                """)
            try await store.client.withTransaction(logger: logger) { holder in
                try await holder.query("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE", logger: logger)
                do {
                    let applied = try await store.migrate(lockTimeout: .milliseconds(200))
                    Issue.record("migrated through another session's lock: \(applied)")
                } catch {
                    #expect("\(error)".contains("another session holds"), "\(error)")
                }
            }
            let rows = try await store.client.query("SELECT count(*)::int FROM schema_migrations").collect()
            #expect(try rows.first?.decode(Int.self) == 0)
            #expect(try await store.client.query("SELECT to_regclass('accounts') IS NULL").collect().first?.decode(Bool.self) == true)
            // The lock gone, the same call goes through.
            #expect(try await store.migrate() == Array(1...Store.schemaVersion))
        }
    }

    @Test("cancelling a migration waiting for the lock closes its connection: it ends at once, the server drops it within seconds, nothing is applied")
    func cancelled() async throws {
        try await TestDatabase.withStore(migrated: false) { store in
            try await store.client.withConnection { holder in
                try await holder.query("SELECT pg_advisory_lock(\(Self.lock))", logger: logger)
                let (steps, step) = AsyncStream.makeStream(of: Store.MigrationStep.self)
                let migration = Task { try await store.migrate(progress: { step.yield($0) }) }
                var iterator = steps.makeAsyncIterator()
                #expect(await iterator.next() == .waitingForOtherNode)
                try await waitForWaiters(on: holder, present: true)
                migration.cancel()
                let outcome = await result(of: migration, within: .seconds(30))
                #expect(outcome != nil, "the cancelled migration still runs after 30 s")
                if case .success(let applied) = outcome { Issue.record("the cancelled migration applied \(applied)") }
                // The server learns of the closed connection at its next check (every second).
                try await waitForWaiters(on: holder, present: false)
            }
            #expect(try await store.client.query("SELECT to_regclass('schema_migrations') IS NULL").collect().first?.decode(Bool.self) == true)
        }
    }

    @Test("a migration cancelled just as it reports waiting, before its next query reaches the server, still ends",
          arguments: 1...5)
    func cancelledBetweenQueries(round: Int) async throws {
        try await TestDatabase.withStore(migrated: false) { store in
            try await store.client.withConnection { holder in
                try await holder.query("SELECT pg_advisory_lock(\(Self.lock))", logger: logger)
                let migration = Task {
                    // Cancelled from within, the instant before the query that waits for the lock is written.
                    try await store.migrate(progress: { if $0 == .waitingForOtherNode { withUnsafeCurrentTask { $0?.cancel() } } })
                }
                let outcome = await result(of: migration, within: .seconds(30))
                #expect(outcome != nil, "the cancelled migration still runs after 30 s")
                if case .success(let applied) = outcome { Issue.record("the cancelled migration applied \(applied)") }
            }
        }
    }

    /// The task's result, or nil when it has not ended within `limit`: a migration that hangs must
    /// fail its test, not hold up the whole run (it is left suspended; its database is dropped).
    private func result<T: Sendable>(of task: Task<T, any Error>, within limit: Duration) async -> Result<T, any Error>? {
        let first = FirstAnswer<Result<T, any Error>?>()
        return await withCheckedContinuation { continuation in
            first.continuation.withLock { $0 = continuation }
            Task { first.resume(returning: await task.result) }
            Task {
                try? await Task.sleep(for: limit)
                first.resume(returning: nil)
            }
        }
    }

    /// Waits (at most 10 s, on the server) until a session of this database waits for an advisory
    /// lock, or until none does; then checks it.
    private func waitForWaiters(on connection: PostgresConnection, present: Bool) async throws {
        let waiting = """
            EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
                    AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
            """
        try await connection.query("""
            DO $$ BEGIN
                FOR i IN 1..200 LOOP EXIT WHEN \(unescaped: waiting) = \(unescaped: present ? "true" : "false"); PERFORM pg_sleep(0.05); END LOOP;
            END $$
            """, logger: logger)
        let rows = try await connection.query("SELECT \(unescaped: waiting)", logger: logger).collect()
        #expect(try rows.first?.decode(Bool.self) == present,
                present ? "the migration never waited for the lock" : "the server still runs the cancelled migration after 10 s")
    }
}

/// Whichever answers first resumes the waiter.
private final class FirstAnswer<T: Sendable>: Sendable {
    let continuation = Mutex<CheckedContinuation<T, Never>?>(nil)
    func resume(returning value: T) { continuation.withLock { $0.take() }?.resume(returning: value) }
}
