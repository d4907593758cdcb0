import PostgresNIO

public enum StoreError: Error, Sendable, CustomStringConvertible {
    /// The database cannot be reached, or did not answer in time. Callers answer `database_unavailable`.
    case unavailable(String)
    /// Some of the named accounts are not watched; nothing was changed.
    case accountsNotFound([String])
    /// The database holds a newer schema than this binary knows.
    case schemaTooNew(database: Int, known: Int)
    /// Anything else the server refused: a bug, reported as such.
    case failed(String)

    public var description: String {
        switch self {
        case .unavailable(let reason): return "database unavailable: \(reason)"
        case .accountsNotFound(let names): return "not watched: \(names.joined(separator: ", "))"
        case let .schemaTooNew(database, known):
            return "the database schema is at version \(database) but this tttd knows \(known) at most: upgrade tttd"
        case .failed(let reason): return "database error: \(reason)"
        }
    }

    /// Sorts a PostgresNIO error into "the database is away" or "the query is wrong".
    static func classify(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        if let transaction = error as? PostgresTransactionError {
            // The error that matters: the closure's, else BEGIN's or COMMIT's.
            if let inner = transaction.closureError ?? transaction.beginError ?? transaction.commitError {
                return classify(inner)
            }
        }
        if let psql = error as? PSQLError {
            if let state = psql.serverInfo?[.sqlState] {
                // Class 08 (connection exception), 57P0x (shutdown, cannot connect now), 53 (resources),
                // 28 (login refused: a wrong password, no such role), 3D000 (no such database).
                if state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") || state.hasPrefix("28")
                    || state == "3D000" {
                    return .unavailable(psql.serverInfo?[.message] ?? state)
                }
                return .failed("\(psql.serverInfo?[.message] ?? "error") (SQLSTATE \(state))")
            }
            switch psql.code {
            case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection,
                 .queryCancelled, .poolClosed:
                return .unavailable(psql.underlying.map { "\($0)" } ?? "connection lost")
            default:
                return .failed("\(psql.code)")
            }
        }
        if error is CancellationError { return .unavailable("cancelled") }
        let text = String(describing: error)
        return .unavailable(text)
    }
}
