import Testing
import TTTStore

@Suite("wake-ups of the polling loops", .timeLimit(.minutes(1)))
struct WakeupTests {
    @Test("a ring ends a wait that would otherwise last an hour")
    func ringEndsWait() async {
        let wakeup = Wakeup()
        let waiter = Task { await wakeup.wait(atMost: .seconds(3600)) }
        wakeup.ring()
        await waiter.value
    }

    @Test("a ring while no one waits is kept for the next wait, and used up by it")
    func ringIsKept() async {
        let wakeup = Wakeup()
        wakeup.ring()
        wakeup.ring()
        await wakeup.wait(atMost: .seconds(3600))
        // Two rings before one wait are one announcement: the next wait runs its full time.
        let clock = ContinuousClock()
        let started = clock.now
        await wakeup.wait(atMost: .milliseconds(100))
        #expect(clock.now - started >= .milliseconds(100))
    }

    @Test("cancelling the waiting task ends its wait")
    func cancellationEndsWait() async {
        let wakeup = Wakeup()
        let waiter = Task { await wakeup.wait(atMost: .seconds(3600)) }
        waiter.cancel()
        await waiter.value
    }

    @Test("without a ring, a wait ends after its limit")
    func limit() async {
        let clock = ContinuousClock()
        let started = clock.now
        await Wakeup().wait(atMost: .milliseconds(50))
        #expect(clock.now - started >= .milliseconds(50))
    }
}

@Suite("announcements of new work")
struct WorkAnnouncerTests {
    let pipelines = Wakeup(), analysis = Wakeup(), delivery = Wakeup()

    func announcer(channels: [Store.Channel]) -> WorkAnnouncer {
        WorkAnnouncer(pipelines: pipelines, analysis: analysis, delivery: delivery, channels: channels)
    }

    func woken(_ announcer: WorkAnnouncer, _ type: Substring?) -> Set<ObjectIdentifier> {
        Set(announcer.wakeups(for: type).map(ObjectIdentifier.init))
    }

    @Test("each event type wakes the loops whose work it brings, and only those")
    func mapping() {
        let announcer = announcer(channels: [.init(name: "email", eventTypes: ["alert", "pipeline_failed"])])
        #expect(woken(announcer, "live_started") == [ObjectIdentifier(pipelines)])
        #expect(woken(announcer, "live_ended") == [ObjectIdentifier(pipelines)])
        #expect(woken(announcer, "transcript") == [ObjectIdentifier(analysis)])
        #expect(woken(announcer, "alert") == [ObjectIdentifier(delivery)])
        // pipeline_failed notices are pipeline_state events.
        #expect(woken(announcer, "pipeline_state") == [ObjectIdentifier(delivery)])
        #expect(woken(announcer, "analysis").isEmpty)
        #expect(woken(announcer, "account_added").isEmpty)
    }

    @Test("a channel that takes live starts is woken by them, with the pipelines")
    func liveStartsDelivered() {
        let announcer = announcer(channels: [.init(name: "webhook:ops", eventTypes: ["live_started"])])
        #expect(woken(announcer, "live_started") == [ObjectIdentifier(pipelines), ObjectIdentifier(delivery)])
        #expect(woken(announcer, "pipeline_state").isEmpty)
    }

    @Test("when announcements may have been missed, every loop looks")
    func missed() {
        #expect(woken(announcer(channels: []), nil).count == 3)
    }

    @Test("the event type is read from a notification's payload")
    func payload() {
        #expect(Store.announcedEventType("42 transcript") == "transcript")
        #expect(Store.announcedEventType("42") == nil)
    }
}
