import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TTTEventLoop
import TTTStore

/// Fans the events table out to `tttctl follow` clients. Woken by NOTIFY (sent in the transaction
/// that wrote the event); every two seconds while LISTEN reconnects, a read failed or a gap waits
/// for its transaction, and every `listeningPoll` otherwise (a LISTEN connection that died without
/// a word). Followers read from the table, in id order: an event committed between subscribing and
/// the first wake-up is still delivered. Each notification is also announced to the loops waiting
/// for the work it brings (`WorkAnnouncer`).
actor EventFeed {
    /// The event types followers see (internal ones, like account_added, stay in the table).
    static let followedTypes = ["live_started", "live_ended", "transcript", "analysis", "alert", "pipeline_state"]
    /// A follower that falls this many events behind is cut off rather than slowing the daemon.
    static let followerBuffer = 1000
    /// How long a gap in event ids may be an uncommitted transaction before it is skipped.
    static let gapPatience = Duration.seconds(10)
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
    private var gapSince: ContinuousClock.Instant?
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

    /// One follower's queue. `overflowed` tells the connection why the stream ended.
    final class Subscription: Sendable {
        let usernames: Set<String>?
        let stream: AsyncStream<ByteBuffer>
        let continuation: AsyncStream<ByteBuffer>.Continuation
        private let state = Mutex(false)

        init(usernames: Set<String>?) {
            self.usernames = usernames
            (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self, bufferingPolicy: .bufferingOldest(EventFeed.followerBuffer))
        }

        var overflowed: Bool { state.withLock { $0 } }
        func markOverflowed() { state.withLock { $0 = true } }
    }

    func subscribe(usernames: Set<String>?) async throws(StoreError) -> (Int, Subscription) {
        if !started {
            let last = try await store.lastEventID()
            // Another first follower may have started the feed meanwhile: its cursor stands.
            if !started {
                cursor = last
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
        for subscription in await subscribers.values { subscription.continuation.finish() }
    }

    private func setListening(_ up: Bool) { listening = up }

    /// The periodic read: at once while NOTIFY cannot be trusted to wake the feed, else now and then.
    private func periodicRead() async {
        if !listening || readFailed || gapSince != nil || ContinuousClock.now - lastRead >= Self.listeningPoll {
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
            return .caughtUp
        }
        let events: [Store.EventRecord]
        lastRead = .now
        do {
            events = try await store.events(after: cursor, types: nil, limit: 500)
            readFailed = false
        } catch {
            readFailed = true
            return .caughtUp
        }
        for event in events {
            // Ids are handed out at insert but become visible at commit: a hole may be a transaction
            // still running. Wait for it a while before passing it (a rollback leaves holes for good).
            if event.id != cursor + 1 {
                let now = ContinuousClock.now
                if gapSince == nil { gapSince = now }
                if now - gapSince! < Self.gapPatience { return .caughtUp }
            }
            gapSince = nil
            cursor = event.id
            guard Self.followedTypes.contains(event.type) else { continue }
            subscribers.forEach { id, subscription in
                if let names = subscription.usernames, !names.contains(event.username ?? "") { return }
                var line = ByteBuffer(string: "{\"jsonrpc\":\"2.0\",\"method\":\"event\",\"params\":")
                line.writeString(event.payload)
                line.writeString("}\n")
                if case .dropped = subscription.continuation.yield(line) {
                    subscription.markOverflowed()
                    subscription.continuation.finish()
                    subscribers.removeValue(forKey: id)
                    logger.warning("a follower fell \(Self.followerBuffer) events behind and was cut off")
                }
            }
        }
        return events.count == 500 ? .more : .caughtUp
    }
}
