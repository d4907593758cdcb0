import Foundation
import Testing
import TTTDomain
import TTTStore

/// The quiet answers' write against a real PostgreSQL (the test cluster of `make test`), in a
/// database of its own: an answer counts only while the node that checked the account still holds it.
@Suite("quiet answers and leases", .timeLimit(.minutes(2)))
struct QuietAnswerTests {
    static let pace = Store.Pace(target: .seconds(60), totalWeight: 1, budgetPerSecond: 1)

    @Test("an answer from a node whose lease another node took since is not written over that node's")
    func staleAnswerDropped() async throws {
        try await TestDatabase.withStore { store in
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
        try await TestDatabase.withStore { store in
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
}
