import Foundation
import Hummingbird
import Logging
import NIOCore
import Testing
@testable import TTTTranscription

@Suite("ASR concurrency: fewer requests at once while the ASR cannot keep up")
struct AdaptiveConcurrencyTests {
    @Test("up to the maximum at once; the rest wait and get their places in arrival order")
    func waitsInOrder() async throws {
        let limiter = AdaptiveConcurrency(maximum: 2)
        let first = try await limiter.acquire()
        let second = try await limiter.acquire()
        let order = Recorder()
        let third = Task { let ticket = try await limiter.acquire(); await order.add(3); return ticket }
        while await limiter.waiting < 1 { await Task.yield() }
        let fourth = Task { let ticket = try await limiter.acquire(); await order.add(4); return ticket }
        while await limiter.waiting < 2 { await Task.yield() }
        #expect(await limiter.inFlight == 2)

        await limiter.release(first, .answered)
        let thirdTicket = try await third.value
        #expect(await order.values == [3])
        await limiter.release(second, .failed)
        let fourthTicket = try await fourth.value
        #expect(await order.values == [3, 4])
        await limiter.release(thirdTicket, .answered)
        await limiter.release(fourthTicket, .answered)
        #expect(await limiter.inFlight == 0)
    }

    @Test("requests that time out together halve the limit once; answers bring it back one step per round")
    func halvesOncePerOverloadThenGrows() async throws {
        let limiter = AdaptiveConcurrency(maximum: 16)
        var tickets = [AdaptiveConcurrency.Ticket]()
        for _ in 0..<16 { tickets.append(try await limiter.acquire()) }
        let cut = await limiter.release(tickets.removeFirst(), .overloaded)
        #expect(cut == .cut(to: 8, waiting: 0))
        for ticket in tickets { #expect(await limiter.release(ticket, .overloaded) == nil, "cut again for the same overload") }
        #expect(await limiter.limit == 8)

        // A request begun after the cut that also times out: the ASR is still overloaded.
        let later = try await limiter.acquire()
        #expect(await limiter.release(later, .overloaded) == .cut(to: 4, waiting: 0))

        // Additive increase: about one more per `limit` answers, up to the maximum and no further.
        for _ in 0..<4 { await limiter.release(try await limiter.acquire(), .answered) }
        let grown = await limiter.limit
        #expect(grown >= 4.9 && grown < 5.1)
        var changes = [AdaptiveConcurrency.Change]()
        for _ in 0..<400 {
            if let change = await limiter.release(try await limiter.acquire(), .answered) { changes.append(change) }
        }
        #expect(await limiter.limit == 16)
        #expect(changes == [.recovered])
        // Never below one.
        for _ in 0..<10 { await limiter.release(try await limiter.acquire(), .overloaded) }
        #expect(await limiter.limit == 1)
    }

    @Test("a waiter cancelled before its turn leaves the queue, throws, and takes no place", .timeLimit(.minutes(1)))
    func cancelledWaiter() async throws {
        let limiter = AdaptiveConcurrency(maximum: 1)
        let held = try await limiter.acquire()
        let waiter = Task { try await limiter.acquire() }
        while await limiter.waiting < 1 { await Task.yield() }
        waiter.cancel()
        await #expect(throws: CancellationError.self) { try await waiter.value }
        #expect(await limiter.waiting == 0)
        await limiter.release(held, .answered)
        #expect(await limiter.inFlight == 0)
        let next = try await limiter.acquire()
        await limiter.release(next, .answered)
    }

    /// The soak's failure, small: an ASR that works through its requests one at a time, slower than
    /// the callers' timeout once a few queue. Without the limit each request waits behind the ones
    /// already given up (the server cannot tell), and every caller times out for ever.
    @Test("16 callers, an ASR that takes one request at a time: the transcriber backs off and every window gets through", .timeLimit(.minutes(2)))
    func slowServerKeepsUp() async throws {
        let server = SerialASR(serviceTime: .milliseconds(40))
        try await server.run { baseURL in
            let transcriber = OpenAITranscriber(baseURL: baseURL, apiKey: nil, timeout: .milliseconds(400), maxConnections: 16,
                                                logger: Logger(label: "asr-concurrency-test", factory: { _ in SwiftLogNoOpLogHandler() }))
            let request = TranscriptionRequest(wav: WAV.encode([Int16](repeating: 0, count: 1600)), model: "tiny", language: "en")
            let deadline = ContinuousClock.now + .seconds(60)
            let done = await withTaskGroup(of: Int.self) { group in
                for _ in 0..<16 {
                    group.addTask {
                        var transcribed = 0
                        while transcribed < 4, ContinuousClock.now < deadline {
                            do {
                                _ = try await transcriber.transcribe(request)
                                transcribed += 1
                            } catch {
                                try? await Task.sleep(for: .milliseconds(20))
                            }
                        }
                        return transcribed
                    }
                }
                return await group.reduce(0, +)
            }
            let limit = await transcriber.concurrency.limit
            await transcriber.shutdown()
            let received = await server.received
            #expect(done == 64, "only \(done) of 64 windows transcribed in 60 s (the ASR received \(received) requests)")
            #expect(limit < 16, "the limit was never cut")
            // Work the ASR did for callers that had given up: bounded, not the bulk of it.
            #expect(received < 64 * 2, "the ASR received \(received) requests for 64 windows")
        }
    }
}

private actor Recorder {
    var values: [Int] = []
    func add(_ value: Int) { values.append(value) }
}

/// An OpenAI-style ASR that serves one request at a time, `serviceTime` each, in arrival order, and
/// keeps working on a request whose client has gone (as faster-whisper's server does).
private actor SerialASR {
    let serviceTime: Duration
    private var busyUntil = ContinuousClock.now
    private(set) var received = 0

    init(serviceTime: Duration) { self.serviceTime = serviceTime }

    /// When the request arriving now will be answered.
    func admit() -> ContinuousClock.Instant {
        received += 1
        busyUntil = max(busyUntil, .now) + serviceTime
        return busyUntil
    }

    nonisolated func run(_ test: (_ baseURL: String) async throws -> Void) async throws {
        try await withTestASR({ request in
            var request = request
            _ = try await request.collectBody(upTo: 1 << 20)
            try await Task.sleep(until: await self.admit())
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"text":" hello","language":"en","duration":0.1,"segments":[]}"#)))
        }, test)
    }
}
