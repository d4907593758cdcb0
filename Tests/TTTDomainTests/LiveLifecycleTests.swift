import Testing
import TTTDomain

@Suite("live lifecycle hysteresis")
struct LiveLifecycleTests {
    let room = ObservedLive(roomID: "7684008970436823815", title: "Bonsoir", viewers: 12, streamURL: nil, restricted: false)
    var openState: DetectionState { .init(openLive: .init(id: 9, roomID: room.roomID), offlineStreak: 0, notFoundStreak: 0) }
    let idle = DetectionState(openLive: nil, offlineStreak: 0, notFoundStreak: 0)

    @Test("a live starts on the first live answer")
    func starts() {
        let decision = LiveLifecycle.decide(idle, .live(room), offlineConfirmations: 2)
        #expect(decision.start == room)
        #expect(decision.end == nil)
        #expect(decision.checkState == .live)
    }

    @Test("it ends only after the configured number of offline answers in a row")
    func endsAfterConfirmations() {
        let first = LiveLifecycle.decide(openState, .offline, offlineConfirmations: 2)
        #expect(first.end == nil)
        #expect(first.offlineStreak == 1)
        #expect(first.recheckSoon)
        var state = openState
        state.offlineStreak = first.offlineStreak
        let second = LiveLifecycle.decide(state, .offline, offlineConfirmations: 2)
        #expect(second.end?.id == 9)
        #expect(second.end?.reason == .offline)
    }

    @Test("unknown answers neither count nor reset the offline streak")
    func unknownIsNeutral() {
        var state = openState
        state.offlineStreak = 1
        let decision = LiveLifecycle.decide(state, .unknown("challenge page"), offlineConfirmations: 2)
        #expect(decision.offlineStreak == 1)
        #expect(decision.end == nil)
        #expect(decision.checkState == .unknown)
        #expect(decision.detail == "challenge page")
    }

    @Test("a live answer resets the streak; check_alive counts like a lookup")
    func aliveResets() {
        var state = openState
        state.offlineStreak = 1
        #expect(LiveLifecycle.decide(state, .live(room), offlineConfirmations: 2).offlineStreak == 0)
        #expect(LiveLifecycle.decide(state, .roomAlive(room.roomID), offlineConfirmations: 2).offlineStreak == 0)
        let gone = LiveLifecycle.decide(state, .roomGone(room.roomID), offlineConfirmations: 2)
        #expect(gone.end?.id == 9)
        // An answer about another room says nothing about this live.
        let other = LiveLifecycle.decide(state, .roomGone("7000000000000000001"), offlineConfirmations: 2)
        #expect(other.end == nil && other.offlineStreak == 1)
    }

    @Test("a new room while live ends the old live and starts the new one")
    func newRoom() {
        var next = room
        next.roomID = "7684008970436823999"
        let decision = LiveLifecycle.decide(openState, .live(next), offlineConfirmations: 2)
        #expect(decision.end?.id == 9)
        #expect(decision.end?.reason == .newRoom)
        #expect(decision.start == next)
    }

    @Test("one 'not found' is unknown; two in a row on an idle account is not_found; never ends a live")
    func notFound() {
        let once = LiveLifecycle.decide(idle, .notFound, offlineConfirmations: 2)
        #expect(once.checkState == .unknown)
        let twice = LiveLifecycle.decide(.init(openLive: nil, offlineStreak: 0, notFoundStreak: 1), .notFound, offlineConfirmations: 2)
        #expect(twice.checkState == .notFound)
        var state = openState
        state.notFoundStreak = 5
        let whileLive = LiveLifecycle.decide(state, .notFound, offlineConfirmations: 2)
        #expect(whileLive.end == nil)
        #expect(whileLive.checkState == .unknown)
    }
}
