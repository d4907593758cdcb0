import Logging
import PostgresNIO
import Synchronization
import TTTDomain

extension Store {
    /// Where a migration stands, for the daemon to say what a long one is doing.
    public enum MigrationStep: Sendable, Equatable {
        /// Another tttd holds the migration lock: it is bringing the schema up to date.
        case waitingForOtherNode
        /// A version being applied: on a table of months of history, a step may take minutes.
        case applying(version: Int, name: String)
    }

    /// Any constant will do, as long as it is tttd's own: "tttd" in ASCII.
    static let migrationLock = 1_953_789_028

    /// Brings the schema to the latest version in one transaction, under an advisory lock so that
    /// several daemons starting together apply each step once. Returns the versions applied.
    ///
    /// No deadline: a step may take minutes on a big table, and cutting it off would only start it
    /// again. The caller watches the database meanwhile and cancels this task when it stops
    /// answering; cancelling closes the connection, which rolls the migration back. A step that waits
    /// longer than `lockTimeout` for a table another session holds (an open transaction, a pg_dump)
    /// fails instead of queueing every query on that table behind it, and is tried again by the caller.
    ///
    /// On a connection of its own, not the pool's: the pool retries a login the server refuses
    /// without saying why (the query only runs out of time), while a connection of its own fails
    /// with the server's reason, such as a wrong password, for the daemon to report at start.
    @discardableResult
    public func migrate(
        lockTimeout: Duration = .seconds(3), progress: @escaping @Sendable (MigrationStep) -> Void = { _ in }
    ) async throws(StoreError) -> [Int] {
        let connection: PostgresConnection
        do {
            connection = try await withDeadline(queryTimeout, what: "login") { [logger, endpoint] in
                try await Self.connect(endpoint, logger: logger)
            }
        } catch {
            throw StoreError.classify(error)
        }
        do {
            let applied = try await withTaskCancellationHandler {
                try await Self.applyMigrations(on: connection, lockTimeout: lockTimeout, progress: progress, logger: logger)
            } onCancel: {
                connection.close().whenComplete { _ in }
            }
            try? await connection.close()
            return applied
        } catch {
            try? await connection.close()
            if (error as? PSQLError)?.serverInfo?[.sqlState] == "55P03" {  // lock_not_available
                throw StoreError.unavailable(
                    "a schema migration step waited over \(lockTimeout) for a table that another session holds "
                        + "(an open transaction, a pg_dump); it is tried again")
            }
            throw StoreError.classify(error)
        }
    }

    private static func applyMigrations(
        on connection: PostgresConnection, lockTimeout: Duration, progress: @Sendable (MigrationStep) -> Void,
        logger: Logger
    ) async throws -> [Int] {
        let session = MigrationSession(connection: connection, logger: logger)
        // When tttd gives a migration up (closes the connection), the server ends it within a second
        // instead of running its step to the end and holding the migration lock meanwhile. An older
        // server (before 14) refuses the setting; outside a transaction that changes nothing.
        _ = try? await session.query("SET client_connection_check_interval = 1000")
        try await session.query("BEGIN")
        do {
            let done = try await applyMigrations(in: session, lockTimeout: lockTimeout, progress: progress)
            try await session.query("COMMIT")
            return done
        } catch {
            _ = try? await session.query("ROLLBACK")
            throw error
        }
    }

    private static func applyMigrations(
        in session: MigrationSession, lockTimeout: Duration, progress: @Sendable (MigrationStep) -> Void
    ) async throws -> [Int] {
        let known = Migrations.latestVersion
        var locked = false
        for try await free in try await session.query("SELECT pg_try_advisory_xact_lock(\(migrationLock))").decode(Bool.self) {
            locked = free
        }
        if !locked {
            // Another tttd is migrating: wait for it however long it takes (no lock timeout yet).
            progress(.waitingForOtherNode)
            try await session.query("SELECT pg_advisory_xact_lock(\(migrationLock))")
        }
        let milliseconds = String(Int((lockTimeout.asSeconds * 1000).rounded(.up)))
        try await session.query("SELECT set_config('lock_timeout', \(milliseconds), true)")
        try await session.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
            """)
        var current = 0
        for try await version in try await session.query("SELECT coalesce(max(version), 0) FROM schema_migrations").decode(Int.self) {
            current = version
        }
        if current > known { throw StoreError.schemaTooNew(database: current, known: known) }
        var done = [Int]()
        for migration in Migrations.all where migration.version > current {
            progress(.applying(version: migration.version, name: migration.name))
            for statement in migration.statements {
                try await session.query(PostgresQuery(unsafeSQL: statement))
            }
            try await session.query(
                "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))")
            done.append(migration.version)
        }
        return done
    }
}

/// The migration's connection, each of whose queries ends when the connection closes.
///
/// The connection is closed from outside when the migration is given up, and PostgresNIO drops a
/// query written to a connection that has just closed: its answer never comes, and a transaction's
/// ROLLBACK would wait for it forever. So every query races the connection's closing; a query
/// dropped that way stays suspended, and is all that is lost.
private struct MigrationSession: Sendable {
    let connection: PostgresConnection
    let logger: Logger

    @discardableResult
    func query(_ query: PostgresQuery) async throws -> PostgresRowSequence {
        let race = ClosingRace()
        return try await withCheckedThrowingContinuation { continuation in
            race.continuation.withLock { $0 = continuation }
            Task { [connection, logger] in
                let result: Result<PostgresRowSequence, any Error>
                do { result = .success(try await connection.query(query, logger: logger)) } catch { result = .failure(error) }
                race.continuation.withLock { $0.take() }?.resume(with: result)
            }
            connection.closeFuture.whenComplete { _ in
                race.continuation.withLock { $0.take() }?.resume(
                    throwing: StoreError.unavailable("the connection of the schema migration closed"))
            }
        }
    }
}

/// Whoever takes the continuation first (the query or the closing) resumes the caller.
private final class ClosingRace: Sendable {
    let continuation = Mutex<CheckedContinuation<PostgresRowSequence, any Error>?>(nil)
}
