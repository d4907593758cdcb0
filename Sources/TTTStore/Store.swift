import Foundation
import Logging
import PostgresNIO
import TTTDomain

/// PostgreSQL, pooled. Every call either answers within `queryTimeout` or throws a `StoreError`:
/// callers never hang on a database that went away, and the pool reconnects by itself when it returns.
/// The one exception is `migrate()`, whose caller watches the database instead.
public final class Store: Sendable {
    public struct Endpoint: Sendable {
        public enum Address: Sendable { case tcp(host: String, port: Int), unixSocket(path: String) }
        public var address: Address
        public var user: String
        public var password: String?
        public var database: String

        public init(address: Address, user: String, password: String?, database: String) {
            self.address = address
            self.user = user
            self.password = password
            self.database = database
        }
    }

    /// The pool; a `Service`: run it in the daemon's ServiceGroup before any query.
    public let client: PostgresClient
    public let queryTimeout: Duration
    let endpoint: Endpoint
    let logger: Logger

    public init(endpoint: Endpoint, maximumConnections: Int = 8, queryTimeout: Duration = .seconds(5), logger: Logger) {
        self.endpoint = endpoint
        var configuration: PostgresClient.Configuration
        switch endpoint.address {
        case let .tcp(host, port):
            configuration = .init(host: host, port: port, username: endpoint.user, password: endpoint.password,
                                  database: endpoint.database, tls: .disable)
        case let .unixSocket(path):
            configuration = .init(unixSocketPath: path, username: endpoint.user, password: endpoint.password,
                                  database: endpoint.database)
        }
        configuration.options.maximumConnections = maximumConnections
        configuration.options.connectTimeout = .seconds(3)
        // No keep-alive query: the pool arms its timer (a sleep on Dispatch's timer thread) each
        // time a connection goes idle and leaves it to fire when the next query cancels it: with
        // tttd's queries every second, Dispatch's threads woke about eight times a second (7 % of a
        // check's CPU at 1,000 accounts). As with libpq, a connection broken while idle is found by
        // its next query: the pool closes and replaces it, and that query's work is done again.
        configuration.options.keepAliveBehavior = nil
        // The pool arms an idle-timeout timer (two tasks and a Dispatch timer) each time a connection
        // above this minimum goes idle, and cancels it at the next query: tttd queries every second,
        // so its usual two connections are kept for good instead.
        configuration.options.minimumConnections = min(2, maximumConnections)
        client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.queryTimeout = queryTimeout
        self.logger = logger
    }

    /// Every database call goes through here: a deadline, and errors sorted into `StoreError`.
    func run<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresClient) async throws -> T) async throws(StoreError) -> T {
        let client = self.client
        do {
            return try await withDeadline(queryTimeout, what: what) { try await body(client) }
        } catch {
            throw StoreError.classify(error)
        }
    }

    func transaction<T: Sendable>(_ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws(StoreError) -> T {
        let logger = self.logger
        return try await run(what) { client in
            try await client.withTransaction(logger: logger) { connection in try await body(connection) }
        }
    }

    /// A cheap round trip, for health checks.
    public func ping() async throws(StoreError) {
        try await run("ping") { client in
            _ = try await client.query("SELECT 1")
        }
    }

    /// The server's reason for refusing a new login (a wrong password, no such role or database);
    /// nil when it lets tttd in or cannot be reached at all.
    public func loginRefusal() async -> String? {
        do {
            try await withDeadline(queryTimeout, what: "login") { [logger, endpoint] in
                let connection = try await Self.connect(endpoint, logger: logger)
                try? await connection.close()
            }
            return nil
        } catch let error as PSQLError {
            guard error.serverInfo?[.sqlState] != nil else { return nil }
            return error.serverInfo?[.message]
        } catch {
            return nil
        }
    }

    /// A connection outside the pool, for the migration and the login check.
    static func connect(_ endpoint: Endpoint, logger: Logger) async throws -> PostgresConnection {
        var configuration: PostgresConnection.Configuration
        switch endpoint.address {
        case let .tcp(host, port):
            configuration = .init(host: host, port: port, username: endpoint.user, password: endpoint.password,
                                  database: endpoint.database, tls: .disable)
        case let .unixSocket(path):
            configuration = .init(unixSocketPath: path, username: endpoint.user, password: endpoint.password,
                                  database: endpoint.database)
        }
        configuration.options.connectTimeout = .seconds(3)
        return try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
    }

    public static var schemaVersion: Int { Migrations.latestVersion }
}
