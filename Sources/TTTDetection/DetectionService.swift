import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import TTTDomain
import TTTEventLoop
import TTTMetrics
import TTTStore
import TTTTikTok

/// Watches every account within the request budget: claims due accounts (leases shared with other
/// nodes), looks them up through its egresses, follows open lives with batched check_alive, and
/// records each answer with the lifecycle's hysteresis.
public final class DetectionService: Service, Sendable {
    public struct Settings: Sendable {
        public var interval: Duration
        public var offlineConfirmations: Int
        public var requestsPerSecond: Double
        public var concurrency: Int
        /// How often open lives are re-checked through check_alive.
        public var aliveRecheck: Duration
        /// How long a claim holds an account or a live; a dead node's work returns after this.
        public var lease: Duration
        /// Rooms per check_alive request.
        public var aliveBatch: Int

        public init(interval: Duration, offlineConfirmations: Int, requestsPerSecond: Double, concurrency: Int,
                    aliveRecheck: Duration = .seconds(15), lease: Duration = .seconds(60), aliveBatch: Int = 50) {
            self.interval = interval
            self.offlineConfirmations = offlineConfirmations
            self.requestsPerSecond = requestsPerSecond
            self.concurrency = concurrency
            self.aliveRecheck = aliveRecheck
            self.lease = lease
            self.aliveBatch = aliveBatch
        }
    }

    public struct Egress: Sendable {
        public var name: String
        public var client: any TikTokClient

        public init(name: String, client: any TikTokClient) {
            self.name = name
            self.client = client
        }
    }

    /// What `tttctl status` shows of detection.
    public struct Snapshot: Sendable, Codable, Equatable {
        public var nodeID: String
        public var intervalS: Double
        /// The time between two checks of an account of average weight, given the cluster's budget.
        public var roundS: Double
        public var budgetRPS: Double
        public var egresses: [EgressSnapshot]

        public var stretched: Bool { roundS > intervalS * 1.05 }
    }

    let nodeID: String
    /// This run's mark on the node's row: tells its own heartbeats from those of a second tttd
    /// with the same node id.
    let runToken = UUID().uuidString
    let store: Store
    let egresses: [(Egress, EgressPacer)]
    let settings: Mutex<Settings>
    let pace: Mutex<Store.Pace>
    let queue: JobQueue
    let logger: Logger
    let onRecorded: @Sendable (Store.Recorded, Username) async -> Void
    /// Quiet lookup answers waiting for the next claim, which writes them in its statement.
    let quiet = QuietAnswers()
    let detectionLatency = Metrics.Timer(label: TTTMetric.detectionLatency.name)
    private let lastTwinWarning = Mutex<ContinuousClock.Instant?>(nil)

    public init(nodeID: String, store: Store, egresses: [Egress], settings: Settings, logger: Logger,
                onRecorded: @escaping @Sendable (Store.Recorded, Username) async -> Void) {
        self.nodeID = nodeID
        self.store = store
        let perEgress = settings.requestsPerSecond
        self.egresses = egresses.map { ($0, EgressPacer(name: $0.name, rate: perEgress, concurrency: settings.concurrency)) }
        self.settings = Mutex(settings)
        self.pace = Mutex(Store.Pace(target: settings.interval, totalWeight: 0,
                                     budgetPerSecond: perEgress * Double(max(1, egresses.count))))
        self.queue = JobQueue(store: store, nodeID: nodeID, quiet: quiet, logger: logger)
        self.logger = logger
        self.onRecorded = onRecorded
    }

    var nodeBudget: Double { settings.withLock { $0.requestsPerSecond } * Double(egresses.count) }

    /// New settings after SIGHUP (interval, confirmations, budget).
    public func update(_ new: Settings) async {
        settings.withLock { $0 = new }
        for (_, pacer) in egresses { await pacer.setRate(new.requestsPerSecond) }
        pace.withLock { $0.target = new.interval }
    }

    /// Wakes the queue: accounts were added and are due now.
    public func accountsAdded() async { await queue.poke() }

    public func snapshot() async -> Snapshot {
        let current = pace.withLock { $0 }
        let accounts = await queue.accountCount
        var egressSnapshots = [EgressSnapshot]()
        for (_, pacer) in egresses { egressSnapshots.append(await pacer.snapshot()) }
        let round = current.budgetPerSecond > 0 ? Double(accounts) / current.budgetPerSecond : 0
        return Snapshot(nodeID: nodeID, intervalS: current.target.asSeconds,
                        roundS: max(current.target.asSeconds, round), budgetRPS: current.budgetPerSecond,
                        egresses: egressSnapshots)
    }

    /// Node ids are the host name and the control socket: two machines cloned with one host name
    /// share one, and each would free the other's leases at start and renew them as its own. Before
    /// anything runs under the id: when a run other than this machine's last one (`runMarker`, the
    /// file where `noteRun` leaves each run's token) beat on the node's row within the last 90 s,
    /// the row is watched for `watch` (a heartbeat and a half): a beat means a second tttd runs as
    /// this node (`NodeIDInUse`), none that the run ended without a clean stop. False on shutdown.
    public func claimNodeID(runMarker: String, watch: Duration = .seconds(15)) async throws -> Bool {
        do {
            var seen: Store.NodeRun?
            try await retryingStore("read the node's row") { seen = try await store.nodeRun(nodeID) }
            let lastRunHere = (try? String(contentsOfFile: runMarker, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            guard let seen, let token = seen.token, token != lastRunHere, seen.age < .seconds(90) else { return true }
            logger.notice("node \(nodeID) beat \(Int(seen.age.asSeconds)) s ago in another run; watching it for \(Int(watch.asSeconds)) s to tell a restart from a second tttd with this node id")
            try await cancelWhenGracefulShutdown { try await Task.sleep(for: watch) }
            var now: Store.NodeRun?
            try await retryingStore("read the node's row") { now = try await store.nodeRun(nodeID) }
            if let now, now.token != nil, now.heartbeat != seen.heartbeat { throw NodeIDInUse(nodeID: nodeID) }
            return true
        } catch is CancellationError {
            return false
        }
    }

    /// Leaves this run's token in `runMarker`, once this run is the host's tttd on its socket: a
    /// restart after a crash then knows the run on the node's row as this machine's.
    public func noteRun(runMarker: String) {
        do {
            try (runToken + "\n").write(toFile: runMarker, atomically: true, encoding: .utf8)
        } catch {
            logger.warning("cannot note this run in \(runMarker): a restart after a crash will wait 15 s", metadata: ["error": "\(error)"])
        }
    }

    public func run() async throws {
        try await retryingStore("register node") { try await store.registerNode(nodeID, token: runToken, budgetPerSecond: nodeBudget) }
        logger.notice("detection started", metadata: [
            "node": "\(nodeID)", "egresses": "\(egresses.map(\.0.name).joined(separator: ","))",
            "budget_rps": "\(nodeBudget)"])
        // The first heartbeat sets the pace (the cluster's budget and weights) before any check is planned.
        await beat()
        await withDiscardingTaskGroup { group in
            group.addTask { await self.heartbeat() }
            group.addTask { await self.writeQuietAnswers() }
            for (egress, pacer) in egresses {
                let checks = CheckCounters(egress: egress.name)
                for _ in 0..<settings.withLock({ $0.concurrency }) {
                    group.addTask { await self.work(egress, pacer, checks) }
                }
            }
        }
        // A clean stop: the next start of this node has nothing to tell apart.
        try? await store.nodeStopped(nodeID, token: runToken)
    }

    // MARK: Loops

    private func heartbeat() async {
        // One watch for the whole loop, and the loop's timer rather than Dispatch's.
        try? await cancelWhenGracefulShutdown {
            while true {
                try await LoopSleep.sleep(for: .seconds(10))
                await self.beat()
            }
        }
    }

    /// Most answers change nothing but the account's row (an idle account is still offline): the
    /// job queue's next claim writes them in its own statement, every `JobQueue.claimEvery` while
    /// accounts fall due. Answers no claim took that long (the queue holds enough accounts, or
    /// only lives are due) are written here on their own.
    private func writeQuietAnswers() async {
        // One watch for the whole loop: a watch per wait costs a task group and two tasks each time.
        try? await cancelWhenGracefulShutdown {
            while true {
                try await LoopSleep.sleep(for: JobQueue.claimEvery)
                await self.flushQuietAnswers(olderThan: JobQueue.claimEvery)
            }
        }
        // What came in since the last write, and a batch whose write the shutdown interrupted.
        await flushQuietAnswers(olderThan: .zero)
    }

    private func flushQuietAnswers(olderThan age: Duration) async {
        let batch = quiet.take(olderThan: age)
        guard !batch.isEmpty else { return }
        do {
            try await store.recordQuiet(batch, pace: pace.withLock { $0 }, node: nodeID)
        } catch where Task.isCancelled {
            quiet.putBack(batch)
        } catch {
            logger.warning("could not record checks; their accounts are checked again when their leases end",
                           metadata: ["accounts": "\(batch.count)", "error": "\(error)"])
        }
    }

    private func beat() async {
        do {
            let openedBefore = await queue.livesOpenedHere
            let beat = try await store.heartbeat(nodeID, token: runToken, budgetPerSecond: nodeBudget)
            if beat.otherRun { twinSeen() }
            pace.withLock {
                $0.budgetPerSecond = beat.budget
                $0.totalWeight = beat.totalWeight
            }
            await queue.setAccountCount(beat.accounts)
            await queue.setLivesOpen(beat.openLives > 0, openedBefore: openedBefore)
            let rate = egresses.isEmpty ? 0 : await egresses[0].1.effectiveRate
            await queue.setClaimSize(Int((rate * Double(egresses.count) * 10).rounded(.up)))
        } catch {
            logger.warning("detection heartbeat failed", metadata: ["error": "\(error)"])
        }
    }

    /// Two runs that started together both passed `claimNodeID`; each heartbeat of either then finds
    /// the other's token. Said at most every ten minutes: the fix is the administrator's.
    private func twinSeen() {
        let now = ContinuousClock.now
        let due = lastTwinWarning.withLock { last in
            guard last.map({ now - $0 >= .seconds(600) }) ?? true else { return false }
            last = now
            return true
        }
        if due { logger.error("\(NodeIDInUse(nodeID: nodeID))") }
    }

    /// One worker of an egress. A graceful shutdown cancels the loop wherever it waits (a request
    /// in flight is cut short and nothing is recorded of it: its account is checked again when its
    /// lease ends). One watch for the whole loop: a watch per wait costs a task group and two tasks
    /// per check.
    private func work(_ egress: Egress, _ pacer: EgressPacer, _ checks: CheckCounters) async {
        try? await cancelWhenGracefulShutdown { try await self.checkLoop(egress, pacer, checks) }
    }

    private func checkLoop(_ egress: Egress, _ pacer: EgressPacer, _ checks: CheckCounters) async throws {
        while !Task.isCancelled {
            let (batch, lease, recheck) = settings.withLock { ($0.aliveBatch, $0.lease, $0.aliveRecheck) }
            let job = try await queue.next(aliveBatch: batch, lease: lease, aliveRecheck: recheck, pace: pace.withLock { $0 })
            do { try await pacer.acquire() } catch {
                await queue.giveBack(job)
                throw error
            }
            switch job {
            case .lookUp(let account):
                let asked = ContinuousClock.now
                let lookup = await egress.client.lookUp(account.username, followUps: pacer)
                // Stopping: the request was cut short, its answer is the stop's own. Nothing is
                // recorded; the account's lease runs out and it is checked again.
                try Task.checkCancellation()
                checks.count(lookup)
                await pacer.finish(block: lookup.block)
                let observation = await observe(lookup, egress: egress, pacer: pacer)
                try Task.checkCancellation()
                if let answer = quietAnswer(observation, account) {
                    quiet.append(answer)
                } else if account.live, case .live(let live) = observation, await recordedStillLive(live, account) {
                    // Written in one statement: the live goes on in the same room.
                } else if account.live, case .offline = observation, await recordedLookupOffline(account) {
                    // Written in one statement: the live's end counted, or confirmed.
                } else if !account.live, case .live = observation,
                          await recordedStart(observation, account, reportedStart: lookup.startedAt, answerAge: ContinuousClock.now - asked) {
                    // Written in one statement: a live starts.
                } else {
                    await record(observation, accountID: account.id, username: account.username, fromLookup: true,
                                 reportedStart: lookup.startedAt, answerAge: ContinuousClock.now - asked)
                }
            case .checkAlive(let lives):
                let answer = await egress.client.checkAlive(lives.map(\.roomID), followUps: pacer)
                try Task.checkCancellation()
                switch answer {
                case .answered(let alive):
                    await pacer.finish(block: nil)
                    var unanswered = [Int64]()
                    var stillAlive = [Int64]()
                    for live in lives {
                        switch alive[live.roomID] {
                        case nil: unanswered.append(live.liveID)
                        case true?: stillAlive.append(live.liveID)
                        case false?:
                            if await !recordedRoomGone(live) {
                                await record(.roomGone(live.roomID), accountID: live.accountID,
                                             username: live.username, fromLookup: false)
                            }
                        }
                    }
                    if !stillAlive.isEmpty { await recordStillAlive(stillAlive) }
                    if !unanswered.isEmpty { await release(unanswered) }
                case .unknown(let reason, let block):
                    await pacer.finish(block: block)
                    logger.info("check_alive answered nothing useful", metadata: ["reason": "\(reason)", "egress": "\(egress.name)"])
                    await release(lives.map(\.liveID))
                }
            }
        }
    }

    /// A live answer without stream URLs asks room/info for them (with the session, if any).
    private func observe(_ lookup: AccountLookup, egress: Egress, pacer: EgressPacer) async -> Observation {
        switch lookup {
        case .live(var room):
            if room.streams.isEmpty, (try? await pacer.acquire()) != nil {
                let info = await egress.client.roomInfo(room.roomID, followUps: pacer)
                switch info {
                case .live(let detailed):
                    await pacer.finish(block: nil)
                    room.streams = detailed.streams
                    room.title = room.title ?? detailed.title
                case .restricted:
                    await pacer.finish(block: nil)
                    room.restricted = true
                case .ended:
                    await pacer.finish(block: nil)
                    // The two answers disagree (the live may have ended between them): not a live
                    // to open or keep, nor an offline to count.
                    return .unknown("the account's answer said live, room info says room \(room.roomID) ended")
                case .unknown(_, let block):
                    await pacer.finish(block: block)
                }
            }
            return .live(ObservedLive(roomID: room.roomID, title: room.title, viewers: room.viewers,
                                      streamURL: room.streams.best, restricted: room.restricted))
        case .offline: return .offline
        case .notFound: return .notFound
        case .unknown(let reason, _): return .unknown(reason)
        }
    }

    /// `reportedStart`: when TikTok says the live began, for the detection latency of a live this answer opens.
    private func record(_ observation: Observation, accountID: Int64, username: Username, fromLookup: Bool,
                        reportedStart: Date? = nil, answerAge: Duration = .zero) async {
        let (confirmations, recheck) = settings.withLock { ($0.offlineConfirmations, $0.aliveRecheck) }
        do {
            if let recorded = try await store.record(
                observation, accountID: accountID, node: nodeID, offlineConfirmations: confirmations,
                pace: pace.withLock { $0 }, aliveRecheck: recheck, fromLookup: fromLookup, answerAge: answerAge) {
                await didRecord(recorded, username: username, reportedStart: reportedStart)
            }
        } catch {
            // The lease runs out and the account is checked again: nothing is lost but time.
            logger.warning("could not record a check", metadata: ["account": "\(username)", "error": "\(error)"])
        }
    }

    /// After an answer was written: a live opened here turns the lives claims on and has its
    /// detection latency measured; the daemon's hook logs starts and ends.
    private func didRecord(_ recorded: Store.Recorded, username: Username, reportedStart: Date?) async {
        if recorded.startedLiveID != nil {
            await queue.liveOpened()
            if let reportedStart {
                detectionLatency.record(duration: .seconds(max(0, Date().timeIntervalSince(reportedStart))))
            }
        }
        await onRecorded(recorded, username)
    }

    /// The answer as a quiet write, when it opens or ends no live: the account had no open live
    /// when claimed, and this node's lease kept anyone else from changing it since.
    private func quietAnswer(_ observation: Observation, _ account: Store.ClaimedAccount) -> Store.QuietAnswer? {
        guard !account.live else { return nil }
        let state = DetectionState(openLive: nil, offlineStreak: account.offlineStreak, notFoundStreak: account.notFoundStreak)
        let confirmations = settings.withLock { $0.offlineConfirmations }
        let decision = LiveLifecycle.decide(state, observation, offlineConfirmations: confirmations)
        guard decision.start == nil, decision.end == nil, !decision.recheckSoon, let checkState = decision.checkState else { return nil }
        return Store.QuietAnswer(accountID: account.id, notFoundStreak: decision.notFoundStreak,
                                 checkState: checkState, detail: decision.detail)
    }

    /// The answers about lives that come most — a live's start, a lookup while it goes on, a
    /// lookup's or check_alive's "gone" — each in one statement while the state the caller saw still
    /// holds (`Store.recordStart`, `Store.recordStillLive`, `Store.recordLookupOffline`,
    /// `Store.recordRoomGone`). False: record the answer in full, which reads the state again. A
    /// failure here is left to that full record too, except when stopping: then nothing is written
    /// (the lease runs out and the account or live is checked again).
    private func recordedStillLive(_ live: ObservedLive, _ account: Store.ClaimedAccount) async -> Bool {
        do {
            return try await store.recordStillLive(live, accountID: account.id, node: nodeID, pace: pace.withLock { $0 })
        } catch {
            return Task.isCancelled
        }
    }

    private func recordedStart(_ observation: Observation, _ account: Store.ClaimedAccount, reportedStart: Date?,
                               answerAge: Duration) async -> Bool {
        let (confirmations, recheck) = settings.withLock { ($0.offlineConfirmations, $0.aliveRecheck) }
        let state = DetectionState(openLive: nil, offlineStreak: account.offlineStreak, notFoundStreak: account.notFoundStreak)
        let decision = LiveLifecycle.decide(state, observation, offlineConfirmations: confirmations)
        do {
            guard let recorded = try await store.recordStart(decision, accountID: account.id, node: nodeID,
                                                             pace: pace.withLock { $0 }, aliveRecheck: recheck,
                                                             answerAge: answerAge) else { return false }
            await didRecord(recorded, username: account.username, reportedStart: reportedStart)
            return true
        } catch {
            return Task.isCancelled
        }
    }

    private func recordedRoomGone(_ live: Store.ClaimedLive) async -> Bool {
        let confirmations = settings.withLock { $0.offlineConfirmations }
        do {
            return await written(try await store.recordRoomGone(live, node: nodeID, offlineConfirmations: confirmations),
                                 username: live.username)
        } catch {
            return Task.isCancelled
        }
    }

    private func recordedLookupOffline(_ account: Store.ClaimedAccount) async -> Bool {
        let confirmations = settings.withLock { $0.offlineConfirmations }
        do {
            return await written(try await store.recordLookupOffline(accountID: account.id, node: nodeID, pace: pace.withLock { $0 },
                                                                     offlineConfirmations: confirmations),
                                 username: account.username)
        } catch {
            return Task.isCancelled
        }
    }

    /// Whether a one-statement "offline" was written; an end it confirmed goes through `didRecord`.
    private func written(_ counted: Store.OfflineCounted?, username: Username) async -> Bool {
        switch counted {
        case .counted?: return true
        case .ended(let recorded)?:
            await didRecord(recorded, username: username, reportedStart: nil)
            return true
        case nil: return false
        }
    }

    private func recordStillAlive(_ lives: [Int64]) async {
        let recheck = settings.withLock { $0.aliveRecheck }
        do { try await store.recordStillAlive(lives, node: nodeID, after: recheck) } catch {
            // Their leases run out and they are checked again.
            logger.warning("could not record live rooms", metadata: ["lives": "\(lives.count)", "error": "\(error)"])
        }
    }

    private func release(_ lives: [Int64]) async {
        let recheck = settings.withLock { $0.aliveRecheck }
        do { try await store.releaseLives(lives, node: nodeID, after: recheck) } catch {
            logger.warning("could not release lives", metadata: ["error": "\(error)"])
        }
    }

    private func retryingStore(_ what: String, _ body: () async throws -> Void) async throws {
        var delay = Duration.seconds(1)
        while true {
            do { return try await body() } catch {
                logger.warning("detection: \(what) failed; retrying", metadata: ["error": "\(error)"])
                let wait = delay
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                delay = min(delay * 2, .seconds(30))
            }
        }
    }
}

/// A second tttd runs under this node's id.
public struct NodeIDInUse: Error, CustomStringConvertible {
    public var nodeID: String

    public var description: String {
        "another tttd is running as node \(nodeID) (a node id is the host name and control.socket): "
            + "give each machine its own host name"
    }
}
