import Testing
import TTTEventLoop

@Suite("sleeps on the event loops")
struct LoopSleepTests {
    @Test("a sleep returns at its deadline, not before")
    func returnsAtDeadline() async throws {
        let start = ContinuousClock.now
        try await LoopSleep.sleep(for: .milliseconds(150))
        #expect(ContinuousClock.now - start >= .milliseconds(150))
    }

    @Test("a deadline already past returns at once")
    func pastDeadline() async throws {
        try await LoopSleep.sleep(until: .now - .seconds(1))
    }

    @Test("cancelling a sleeping task ends its sleep with CancellationError, long before the deadline")
    func cancelWhileSleeping() async throws {
        let asleep = AsyncStream<Void>.makeStream()
        let sleeper = Task { () -> (any Error)? in
            asleep.continuation.yield()
            do { try await LoopSleep.sleep(for: .seconds(60)) } catch { return error }
            return nil
        }
        for await _ in asleep.stream { break }
        let start = ContinuousClock.now
        sleeper.cancel()
        #expect(await sleeper.value is CancellationError)
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test("a task cancelled before it sleeps does not sleep")
    func cancelledBefore() async throws {
        let sleeper = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            try await LoopSleep.sleep(for: .seconds(60))
        }
        await #expect(throws: CancellationError.self) { try await sleeper.value }
    }

    @Test("many sleepers on the loops each wake once, none before its deadline")
    func manySleepers() async throws {
        let start = ContinuousClock.now
        let woken = await withTaskGroup(of: (index: Int, early: Bool).self) { group in
            for index in 0..<50 {
                group.addTask {
                    let deadline = start + .milliseconds(10 * (index % 10 + 1))
                    try? await LoopSleep.sleep(until: deadline)
                    return (index, ContinuousClock.now < deadline)
                }
            }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(woken.filter(\.early).isEmpty)
        #expect(woken.map(\.index).sorted() == Array(0..<50))
    }
}
