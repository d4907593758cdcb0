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
        #expect(blocked.lastBlock == "429, retry after 120 s")
        #expect(blocked.blocks == 1)
        #expect(await pacer.effectiveRate == 0.5)
    }

    @Test("a Retry-After longer than 15 minutes pauses the egress 15 minutes: one request then tells whether the block holds")
    func longRetryAfterIsCut() async throws {
        let pacer = EgressPacer(name: "direct", rate: 2, concurrency: 1)
        try await pacer.acquire()
        await pacer.finish(block: .tooManyRequests(retryAfter: .seconds(86_400)))
        let blocked = await pacer.snapshot()
        #expect(blocked.pausedForS > 890 && blocked.pausedForS <= 900)
        #expect(blocked.lastBlock == "429, retry after 86400 s; asking again after 900 s")
        #expect(blocked.slowdown == 0.25)
    }

    @Test("a redirect's hop, within a request's place, waits for the next start like a request")
    func followUpsKeepTheSpacing() async throws {
        let pacer = EgressPacer(name: "direct", rate: 10, concurrency: 1)
        try await pacer.acquire()
        let first = ContinuousClock.now
        try await pacer.nextStart()
        try await pacer.nextStart()
        // Never less than 0.99 gaps between two starts: two hops after the first, 0.198 s at least.
        #expect(ContinuousClock.now - first >= .milliseconds(198))
        #expect(await pacer.snapshot().requests == 3)
        #expect(await pacer.inFlight == 1, "a hop takes no place of its own")
        await pacer.finish(block: nil)
        #expect(await pacer.inFlight == 0)
    }

    @Test("repeated challenge pages keep cutting the rate, down to a floor")
    func floor() async throws {
        let pacer = EgressPacer(name: "direct", rate: 1, concurrency: 4)
        for _ in 0..<10 { await pacer.finish(block: .challengePage) }
        #expect(await pacer.snapshot().slowdown == EgressPacer.minimumFactor)
        // Four gaps at the slowest rate, capped at five minutes.
        #expect(await pacer.snapshot().pausedForS > 250)
    }

    @Test("requests already waiting for their slot when a 429 comes wait out its pause and start at the slower rate, one by one")
    func waitingRequestsHonourABlock() async throws {
        // The scenario needs the four requests still waiting when the second 429 comes (2 s after the
        // first); a starved test runner can miss that, so it is set up again, up to three times.
        for _ in 0..<3 {
            let pacer = EgressPacer(name: "direct", rate: 80, concurrency: 8)
            try await pacer.acquire()
            try await pacer.acquire()
            // A first 429: paused for 2 s, a quarter of the rate.
            await pacer.finish(block: .tooManyRequests(retryAfter: .seconds(2)))
            let checked = try await withThrowingTaskGroup(of: ContinuousClock.Instant.self) { group in
                // Four requests take the slots after that pause…
                for _ in 0..<4 { group.addTask { try await pacer.acquire(); return .now } }
                while await pacer.inFlight < 5 { await Task.yield() }
                // …then a second 429: a sixteenth of the rate (gaps of 200 ms), paused 3 s from now.
                let blockedAt = ContinuousClock.now
                await pacer.finish(block: .tooManyRequests(retryAfter: .seconds(3)))
                guard await pacer.snapshot().requests == 2 else {
                    group.cancelAll()
                    while (try? await group.next()) != nil {}
                    return false
                }
                var starts = [ContinuousClock.Instant]()
                for try await start in group { starts.append(start) }
                let since = starts.sorted().map { $0 - blockedAt }
                // Measured after each task resumes, i.e. no earlier than the start itself: lower bounds hold.
                #expect(since.allSatisfy { $0 >= .seconds(3) }, "\(since)")
                #expect(since.last! >= .seconds(3) + .milliseconds(3 * 198), "\(since)")
                return true
            }
            if checked { return }
        }
        Issue.record("the four requests started before the second 429 in each of three tries: the runner was starved")
    }

    @Test("a request cancelled while it waits for its start hands its turn on: the one queued behind it still starts")
    func cancelledTurnPassesOn() async throws {
        // The scenario needs the first request still waiting when it is cancelled: a runner starved
        // past its start (seen with a build running beside the tests) gets another try.
        for _ in 0..<3 {
            let pacer = EgressPacer(name: "direct", rate: 2, concurrency: 4)
            try await pacer.acquire()
            let started = ContinuousClock.now
            // The first waits for its start (about 500 ms away), the second queues behind it.
            let first = Task { try await pacer.acquire() }
            while await pacer.inFlight < 2 { await Task.yield() }
            let second = Task { try await pacer.acquire() }
            while await pacer.inFlight < 3 { await Task.yield() }
            first.cancel()
            do {
                try await first.value
                second.cancel()
                continue
            } catch {
                #expect(error is CancellationError)
            }
            let secondStarted = await within(.seconds(10)) { (try? await second.value) != nil }
            #expect(secondStarted, "the request queued behind the cancelled one never started")
            guard secondStarted else { return }
            // Spaced from the last request that started (0.99 × 500 ms at least), not from the cancelled one.
            #expect(ContinuousClock.now - started >= .milliseconds(490))
            #expect(await pacer.inFlight == 2)
            #expect(await pacer.snapshot().requests == 2)
            return
        }
        Issue.record("the first request started before it was cancelled in each of three tries: the runner was starved")
    }

    @Test("a stop while the egress is paused for a block ends every waiting request at once, not when the pause ends")
    func stopDuringPause() async throws {
        let pacer = EgressPacer(name: "direct", rate: 10, concurrency: 4)
        try await pacer.acquire()
        await pacer.finish(block: .tooManyRequests(retryAfter: .seconds(600)))
        // One waits for the pause's end, two queue behind it.
        let waiting = (0..<3).map { _ in Task { try await pacer.acquire() } }
        while await pacer.inFlight < 3 { await Task.yield() }
        for request in waiting { request.cancel() }
        let allEnded = await within(.seconds(10)) {
            for request in waiting {
                if (try? await request.value) != nil { return false }
            }
            return true
        }
        #expect(allEnded, "a waiting request outlived the stop, or started during the pause")
        #expect(await pacer.inFlight == 0)
        #expect(await pacer.snapshot().requests == 1)
    }

    /// Whether `body` returns true within `limit`: a request stuck in the pacer's queue cannot be
    /// cancelled, so a broken hand-over would otherwise hang the test run.
    private func within(_ limit: Duration, _ body: @escaping @Sendable () async -> Bool) async -> Bool {
        let (outcome, report) = AsyncStream.makeStream(of: Bool.self)
        Task { report.yield(await body()) }
        Task { try? await Task.sleep(for: limit); report.yield(false) }
        var outcomes = outcome.makeAsyncIterator()
        return await outcomes.next() ?? false
    }
}
