import Foundation
import Logging
import PostgresNIO
import Testing
import TTTConfig
import TTTDomain
import TTTStore

/// The quiet answers' write against a real PostgreSQL (the test cluster of `make test`), in a
/// database of its own: an answer counts only while the node that checked the account still holds it.
@Suite("quiet answers and leases", .timeLimit(.minutes(2)))
struct QuietAnswerTests {
    static let pace = Store.Pace(target: .seconds(60), totalWeight: 1, budgetPerSecond: 1)

    @Test("an answer from a node whose lease another node took since is not written over that node's")
    func staleAnswerDropped() async throws {
        try await withStore { store in
            // Node a's lease runs out at once; node b takes the account and writes its second "not found".
            let id = try await claimTheAccount(store, node: "a")
            #expect(try await store.recordAndClaim([], pace: Self.pace, node: "b", limit: 10, lease: .seconds(60)).map(\.id) == [id])
            try await store.recordQuiet([notFound(id, streak: 2)], pace: Self.pace, node: "b")
            // Node a's answer, from the row as it was when a claimed it, comes last: it must not undo b's.
            try await store.recordQuiet([notFound(id, streak: 1)], pace: Self.pace, node: "a")
            #expect(try await state(store) == .notFound)
        }
    }

    @Test("an answer whose lease ran out while nobody else took the account is written")
    func lateAnswerKept() async throws {
        try await withStore { store in
            let id = try await claimTheAccount(store, node: "a")
            try await store.recordQuiet([notFound(id, streak: 2)], pace: Self.pace, node: "a")
            #expect(try await state(store) == .notFound)
        }
    }

    func notFound(_ id: Int64, streak: Int) -> Store.QuietAnswer {
        Store.QuietAnswer(accountID: id, notFoundStreak: streak, checkState: streak >= 2 ? .notFound : .unknown, detail: nil)
    }

    /// Adds one account and claims it for `node` with a lease that has run out by the next statement.
    func claimTheAccount(_ store: Store, node: String) async throws -> Int64 {
        _ = try await store.addAccounts([Username(trusted: "someone")], labels: [], by: "test")
        let claimed = try await store.recordAndClaim([], pace: Self.pace, node: node, limit: 10, lease: .zero)
        guard claimed.count == 1 else { throw StoreTestError("claimed \(claimed.count) accounts, not the one added") }
        return claimed[0].id
    }

    func state(_ store: Store) async throws -> CheckState? {
        try await store.listAccounts().first?.checkState
    }

    /// A migrated database of its own on the test cluster, dropped afterwards.
    func withStore(_ body: (Store) async throws -> Void) async throws {
        guard let text = ProcessInfo.processInfo.environment["TTT_TEST_DATABASE_URL"], !text.isEmpty else {
            throw StoreTestError("TTT_TEST_DATABASE_URL is not set: run the tests with `make test`")
        }
        let admin = try DatabaseURL(parsing: text)
        var url = admin
        url.database = "ttt_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(16).lowercased()
        var logger = Logger(label: "test")
        logger.logLevel = .error  // not the pool's notice that a query came before its run() started
        // In CI the whole suite runs at once, every test making and migrating a database of its
        // own: a migration there has run past the store's 5-second default.
        let timeout = Duration.seconds(90)
        let adminStore = Store(endpoint: Self.endpoint(admin), maximumConnections: 1, queryTimeout: timeout, logger: logger)
        try await Self.running(adminStore) {
            try await adminStore.client.query("CREATE DATABASE \(unescaped: url.database)")
            let store = Store(endpoint: Self.endpoint(url), maximumConnections: 2, queryTimeout: timeout, logger: logger)
            var failure: (any Error)?
            do {
                try await Self.running(store) {
                    try await store.migrate()
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
