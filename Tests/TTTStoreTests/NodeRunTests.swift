import Testing
import TTTStore

/// The node's row as runs of it leave it: their tokens, and a heartbeat that tells when another run
/// with the same node id wrote since.
@Suite("runs of a node", .timeLimit(.minutes(1)))
struct NodeRunTests {
    @Test("a heartbeat says when another run beat under the same node id since this run's last; a clean stop clears the run")
    func otherRunSeen() async throws {
        try await TestDatabase.withStore { store in
            #expect(try await store.nodeRun("n") == nil)
            try await store.registerNode("n", token: "a", budgetPerSecond: 1)
            #expect(try await store.heartbeat("n", token: "a", budgetPerSecond: 1).otherRun == false)
            // Two runs beating in turn: each sees the other's token.
            #expect(try await store.heartbeat("n", token: "b", budgetPerSecond: 1).otherRun == true)
            #expect(try await store.heartbeat("n", token: "a", budgetPerSecond: 1).otherRun == true)
            #expect(try await store.heartbeat("n", token: "a", budgetPerSecond: 1).otherRun == false)
            #expect(try await store.nodeRun("n")?.token == "a")
            // Only the run on the row clears it.
            try await store.nodeStopped("n", token: "b")
            #expect(try await store.nodeRun("n")?.token == "a")
            try await store.nodeStopped("n", token: "a")
            let stopped = try #require(try await store.nodeRun("n"))
            #expect(stopped.token == nil)
            #expect(stopped.age < .seconds(60))
            // A run starting after a clean stop is not another run.
            #expect(try await store.heartbeat("n", token: "c", budgetPerSecond: 1).otherRun == false)
        }
    }
}
