import Synchronization
import Testing
import TTTEventLoop

@Suite("timers on the event loops")
struct LoopTimerTests {
    @Test("a timer runs its body once, after its delay")
    func firesAfterDelay() async {
        let start = ContinuousClock.now
        let fired = AsyncStream<ContinuousClock.Instant>.makeStream()
        _ = LoopTimer.after(.milliseconds(100)) { fired.continuation.yield(.now) }
        var firings = 0
        for await at in fired.stream {
            firings += 1
            #expect(at - start >= .milliseconds(100))
            break
        }
        #expect(firings == 1)
    }

    @Test("a cancelled timer never runs; one due after it still does")
    func cancelled() async {
        let cancelledRan = Flag()
        let timer = LoopTimer.after(.milliseconds(50)) { cancelledRan.value.withLock { $0 = true } }
        timer.cancel()
        // Due well after the cancelled one would have been: once it has run, the other had its chance.
        let later = AsyncStream<Void>.makeStream()
        _ = LoopTimer.after(.milliseconds(300)) { later.continuation.finish() }
        for await _ in later.stream {}
        let ran = cancelledRan.value.withLock { $0 }
        #expect(!ran)
    }

    private final class Flag: Sendable {
        let value = Mutex(false)
    }
}
