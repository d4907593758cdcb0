import Testing
@testable import TTTDetection

@Suite("egress budget")
struct EgressPacerTests {
    @Test("a 429 pauses the egress for its Retry-After and cuts its rate; quiet answers do not undo it at once")
    func slowsDownOnBlock() async throws {
        let pacer = EgressPacer(name: "direct", rate: 2, concurrency: 1)
        try await pacer.acquire()
        await pacer.finish(block: .tooManyRequests(retryAfter: .seconds(120)))
        let blocked = await pacer.snapshot()
        #expect(blocked.slowdown == 0.25)
        #expect(blocked.pausedForS > 100 && blocked.pausedForS <= 120)
        #expect(blocked.lastBlock == "429, retry after 120.0 seconds")
        #expect(blocked.blocks == 1)
        #expect(await pacer.effectiveRate == 0.5)
    }

    @Test("repeated challenge pages keep cutting the rate, down to a floor")
    func floor() async throws {
        let pacer = EgressPacer(name: "direct", rate: 1, concurrency: 4)
        for _ in 0..<10 { await pacer.finish(block: .challengePage) }
        #expect(await pacer.snapshot().slowdown == EgressPacer.minimumFactor)
        // Four gaps at the slowest rate, capped at five minutes.
        #expect(await pacer.snapshot().pausedForS > 250)
    }
}
