import Foundation
import Logging
import PostgresNIO
import TTTConfig
import TTTStore

/// A migrated database of its own on the test cluster of `make test` (TTT_TEST_DATABASE_URL), for
/// tests of the store's statements.
enum TestDatabase {
    /// Runs `body` with a store on a new database, migrated unless told otherwise, dropped afterwards.
    static func withStore(migrated: Bool = true, _ body: (Store) async throws -> Void) async throws {
        guard let text = ProcessInfo.processInfo.environment["TTT_TEST_DATABASE_URL"], !text.isEmpty else {
            throw StoreTestError("TTT_TEST_DATABASE_URL is not set: run the tests with `make test`")
        }
        let admin = try DatabaseURL(parsing: text)
        var url = admin
        url.database = "ttt_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        var logger = Logger(label: "test")
        logger.logLevel = .error  // not the pool's notice that a query came before its run() started
        // In CI the whole suite runs at once, every test making and migrating a database of its
        // own: creating one there has run past the store's 5-second default.
        let timeout = Duration.seconds(90)
        let adminStore = Store(endpoint: endpoint(admin), maximumConnections: 1, queryTimeout: timeout, logger: logger)
        try await running(adminStore) {
            try await adminStore.client.query("CREATE DATABASE \(unescaped: url.database)")
            let store = Store(endpoint: endpoint(url), maximumConnections: 2, queryTimeout: timeout, logger: logger)
            var failure: (any Error)?
            do {
                try await running(store) {
                    if migrated { try await store.migrate() }
                    try await body(store)
                }
            } catch {
                failure = error
            }
            try await adminStore.client.query("DROP DATABASE \(unescaped: url.database) WITH (FORCE)")
            if let failure { throw failure }
        }
    }

    static func endpoint(_ url: DatabaseURL) -> Store.Endpoint {
        let address: Store.Endpoint.Address = url.socketPath.map { .unixSocket(path: $0) }
            ?? .tcp(host: url.host ?? "localhost", port: url.port)
        return Store.Endpoint(address: address, user: url.user, password: url.password, database: url.database)
    }

    /// Runs `body` while the store's connection pool runs.
    static func running(_ store: Store, _ body: () async throws -> Void) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await store.client.run() }
            defer { group.cancelAll() }
            try await body()
        }
    }
}

struct StoreTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
