import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TTTEventLoop
import TTTStore

/// Fans the events table out to `tttctl follow` clients. Woken by NOTIFY (sent in the transaction
/// that wrote the event); every two seconds while LISTEN reconnects or a read failed, and every
/// `listeningPoll` otherwise (a LISTEN connection that died without a word). Followers read from
/// the table, in id order: an event committed between subscribing and the first wake-up is still
/// delivered. Ids are handed out at insert but become visible at commit, so an id missing below
/// the last one read may be a transaction still running: it is looked for again at every read,
/// and delivered late if it commits, rather than passed over for good. Each notification is also
/// announced to the loops waiting for the work it brings (`WorkAnnouncer`).
actor EventFeed {
    /// The event types followers see (internal ones, like account_added, stay in the table).
    static let followedTypes = ["live_started", "live_ended", "transcript", "analysis", "alert", "pipeline_state"]
    /// A follower that falls this many events behind is cut off rather than slowing the daemon.
    static let followerBuffer = 1000
    /// How long a missing event id is looked for: a transaction of tttd's gives up after seconds
    /// (rolled back, its ids missing for good), but a node or a session may stall mid-transaction.
    static let holePatience = Duration.seconds(3600)
    /// At most this many missing ids are looked for (a sequence that jumped, a crash's cache).
    static let holeLimit = 1000
    /// How often followers' events are read while LISTEN is up and nothing is pending: NOTIFY wakes
    /// the feed, so this read only guards against a connection that died silently.
    static let listeningPoll = Duration.seconds(10)

    private let store: Store
    private let logger: Logger
    /// Told of each event type announced, and of nil when announcements may have been missed.
    private let announce: @Sendable (Substring?) -> Void
    private var cursor: Int64 = 0
    private var started = false
    private var subscribers: [Int: Subscription] = [:]
    private var nextID = 0
    /// Missing ids below the cursor, and when each was first missed.
    private var holes: [Int64: ContinuousClock.Instant] = [:]
    private var listening = false
    /// The last read failed: the events it would have handed out wait for the next one.
    private var readFailed = false
    private var lastRead = ContinuousClock.now
    /// `deliver` suspends on the database; a wake-up meanwhile (NOTIFY, the fallback tick) must not
    /// read from the same cursor and hand the same events out twice. It is noted and served after.
    private var delivering = false
    private var wokenWhileDelivering = false

    init(store: Store, logger: Logger, announce: @escaping @Sendable (Substring?) -> Void = { _ in }) {
        self.store = store
        self.logger = logger
        self.announce = announce
    }

    /// One follower's queue. `endReason` tells the connection why tttd ended it.
    final class Subscription: Sendable {
        enum End: Sendable { case overflowed, shuttingDown }

        let usernames: Set<String>?
        let stream: AsyncStream<ByteBuffer>
        let continuation: AsyncStream<ByteBuffer>.Continuation
        /// Finishes when tttd ends the subscription: a writer stuck on a follower that reads
        /// nothing is not woken by the queue's end.
        let ended: AsyncStream<Never>
        private let endedContinuation: AsyncStream<Never>.Continuation
        private let state = Mutex<End?>(nil)

        init(usernames: Set<String>?) {
            self.usernames = usernames
            (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingOldest(EventFeed.followerBuffer))
            (ended, endedContinuation) = AsyncStream.makeStream(of: Never.self)
        }

        var endReason: End? { state.withLock { $0 } }

        /// Ends the subscription for this reason (the first one given stands); what is still
        /// queued is not to be sent.
        func end(_ reason: End) {
            state.withLock { if $0 == nil { $0 = reason } }
            continuation.finish()
            endedContinuation.finish()
        }
    }

    func subscribe(usernames: Set<String>?) async throws(StoreError) -> (Int, Subscription) {
        if !started {
            let end = try await store.eventsEnd(window: Self.holeLimit)
            // Another first follower may have started the feed meanwhile: its cursor stands.
            if !started {
                cursor = end.last
                let now = ContinuousClock.now
                holes = Dictionary(uniqueKeysWithValues: end.holes.map { ($0, now) })
                started = true
            }
        }
        let subscription = Subscription(usernames: usernames)
        nextID += 1
        subscribers[nextID] = subscription
        return (nextID, subscription)
    }

    func unsubscribe(_ id: Int) {
        subscribers.removeValue(forKey: id)?.continuation.finish()
    }

    /// Runs until shutdown: LISTEN with reconnection, plus the periodic fallback.
    nonisolated func run() async {
        await withDiscardingTaskGroup { group in
            group.addTask {
                while !Task.isShuttingDownGracefully {
                    do {
                        try await self.store.listen("tttd_events") { notifications in
                            await self.setListening(true)
                            // Events committed while no one listened were not announced.
                            self.announce(nil)
                            await self.deliver()
                            for try await notification in notifications.cancelOnGracefulShutdown() {
                                self.announce(Store.announcedEventType(notification.payload))
                                await self.deliver()
                            }
                        }
                    } catch {
                        self.logger.debug("event LISTEN ended; reconnecting", metadata: ["error": "\(error)"])
                    }
                    await self.setListening(false)
                    guard (try? await cancelWhenGracefulShutdown({ try await Task.sleep(for: .seconds(1)) })) != nil else { return }
                }
            }
            group.addTask {
                // One watch for the whole loop, on the loop's timer: a watch per wait costs a task group and two tasks.
                try? await cancelWhenGracefulShutdown {
                    while true {
                        try await LoopSleep.sleep(for: .seconds(2))
                        await self.periodicRead()
                    }
                }
            }
        }
        for subscription in await subscribers.values { subscription.end(.shuttingDown) }
    }

    private func setListening(_ up: Bool) { listening = up }

    /// The periodic read: at once while NOTIFY cannot be trusted to wake the feed, else now and then.
    private func periodicRead() async {
        if !listening || readFailed || ContinuousClock.now - lastRead >= Self.listeningPoll {
            await deliver()
        }
    }

    /// Reads the events past the cursor and hands them to the followers they concern, one reader
    /// at a time.
    func deliver() async {
        if delivering {
            wokenWhileDelivering = true
            return
        }
        delivering = true
        defer { delivering = false }
        repeat {
            wokenWhileDelivering = false
            if await deliverBatch() == .more { wokenWhileDelivering = true }
        } while wokenWhileDelivering
    }

    private enum BatchOutcome { case caughtUp, more }

    /// One read of at most 500 events past the cursor.
    private func deliverBatch() async -> BatchOutcome {
        guard started, !subscribers.isEmpty else {
            // Nobody follows: the next follower starts from the end of the table as it is then.
            started = false
            holes = [:]
            return .caughtUp
        }
        let events: [Store.EventRecord]
        lastRead = .now
        do {
            let now = ContinuousClock.now
            holes = holes.filter { now - $0.value < Self.holePatience }
            events = try await store.events(after: cursor, holes: Array(holes.keys), limit: 500)
            readFailed = false
        } catch {
            readFailed = true
            return .caughtUp
        }
        for event in events {
            if event.id <= cursor {
                // A transaction that was still running at an earlier read: delivered late.
                guard holes.removeValue(forKey: event.id) != nil else { continue }
            } else {
                noteHoles(between: cursor, and: event.id)
                cursor = event.id
            }
            guard Self.followedTypes.contains(event.type) else { continue }
            subscribers.forEach { id, subscription in
                if let names = subscription.usernames, !names.contains(event.username ?? "") { return }
                var line = ByteBuffer(string: "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":")
                line.writeString(event.payload)
                line.writeString("}\n")
                if case .dropped = subscription.continuation.yield(line) {
                    subscription.end(.overflowed)
                    subscribers.removeValue(forKey: id)
                    logger.warning("a follower fell \(Self.followerBuffer) events behind and was cut off")
                }
            }
        }
        return events.count == 500 ? .more : .caughtUp
    }

    /// The ids strictly between two read one after the other: not committed yet, or never.
    private func noteHoles(between low: Int64, and high: Int64) {
        guard high - low > 1 else { return }
        let now = ContinuousClock.now
        for id in max(low + 1, high - Int64(Self.holeLimit))..<high { holes[id] = now }
        if holes.count > Self.holeLimit {
            // The oldest ids give way: the newest are the likeliest to be running still.
            for id in holes.keys.sorted().prefix(holes.count - Self.holeLimit) { holes.removeValue(forKey: id) }
        }
    }
}
