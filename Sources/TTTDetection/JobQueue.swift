import Foundation
import Logging
import Synchronization
import TTTEventLoop
import TTTStore

/// Hands the egress workers their next request: a batched check_alive when open lives are due,
/// else the next claimed account. Claims a few seconds' worth of accounts at a time, so leases stay
/// short and other nodes can take the rest; each claim writes the quiet answers of the accounts
/// checked since the last one.
actor JobQueue {
    enum Job: Sendable {
        case lookUp(Store.ClaimedAccount)
        case checkAlive([Store.ClaimedLive])
    }

    /// While accounts fall due one by one, how often they are claimed (those due within this time
    /// at once): one statement carries the answers written and the accounts taken.
    static let claimEvery = Duration.seconds(2)

    private let store: Store
    private let nodeID: String
    private let quiet: QuietAnswers
    private let logger: Logger
    private var buffered = ClaimedAccounts()
    private var claimSize = 1
    private var lastLivesClaim = ContinuousClock.now - .seconds(60)
    private var idleUntil = ContinuousClock.now
    /// One claim at a time: the other workers wait for its accounts rather than claim their own
    /// (eight idle workers each claiming every second, or a burst of eight claims when the buffer ran dry).
    private var claiming = false
    /// One idle worker waits for the next claim on a timer; the others wait for work without one.
    private var timedWaiter = false
    /// Outside the actor's isolation, so that a loop timer resumes an idle worker without a task of its own.
    private let waiters = Mutex<[Int: CheckedContinuation<Void, Never>]>([:])
    private var nextWaiter = 0
    private(set) var accountCount = 0
    /// Whether any live is open, in the cluster (the heartbeat's count) or opened here since: while
    /// none is, the lives claim (every half recheck) is skipped. True until the first heartbeat.
    private var livesOpen = true
    /// Counts the lives opened here, so that a heartbeat that counted none before one opened cannot
    /// turn the claims off after it.
    private(set) var livesOpenedHere = 0

    init(store: Store, nodeID: String, quiet: QuietAnswers, logger: Logger) {
        self.store = store
        self.nodeID = nodeID
        self.quiet = quiet
        self.logger = logger
    }

    func setClaimSize(_ size: Int) { claimSize = min(200, max(1, size)) }
    func setAccountCount(_ count: Int) { accountCount = count }
    /// The heartbeat's count, taken after `livesOpenedHere` read `openedBefore`.
    func setLivesOpen(_ open: Bool, openedBefore: Int) {
        if open || livesOpenedHere == openedBefore { livesOpen = open }
    }

    /// This node opened a live: claim lives for check_alive again before the next heartbeat.
    func liveOpened() {
        livesOpenedHere += 1
        livesOpen = true
    }

    /// Accounts were added (due at once): stop idling.
    func poke() {
        idleUntil = .now
        wake(.max)
    }

    func giveBack(_ job: Job) {
        if case .lookUp(let account) = job { buffered.putBack(account) }
    }

    /// `pace` sets the next check of the accounts whose answers the claim writes.
    func next(aliveBatch: Int, lease: Duration, aliveRecheck: Duration, pace: Store.Pace) async throws -> Job {
        while true {
            try Task.checkCancellation()
            // Each claim takes the lives due within half a recheck, so one claim per half recheck
            // checks every live every half to whole recheck, in as few requests as can be.
            let livesClaimEvery = max(.seconds(1), aliveRecheck / 2)
            if livesOpen, ContinuousClock.now - lastLivesClaim >= livesClaimEvery {
                lastLivesClaim = .now
                if let lives = try? await store.claimLivesForAliveCheck(
                    node: nodeID, limit: aliveBatch, lease: lease, ahead: aliveRecheck / 2), !lives.isEmpty {
                    // A full batch: more lives may be waiting, look again at once.
                    if lives.count == aliveBatch { lastLivesClaim = .now - livesClaimEvery }
                    return .checkAlive(lives)
                }
            }
            if let account = buffered.next(lease: lease) { return .lookUp(account) }
            if claiming {
                // Woken when that claim is in (a database call, so under a deadline).
                try await idle(until: nil)
                continue
            }
            if ContinuousClock.now >= idleUntil {
                claiming = true
                // The leases run from the statement, which starts after this.
                let claimedAt = ContinuousClock.now
                let answers = quiet.take()
                let claimed: [Store.ClaimedAccount]
                do {
                    claimed = try await store.recordAndClaim(answers, pace: pace, node: nodeID, limit: claimSize,
                                                             lease: lease, ahead: Self.claimEvery)
                } catch {
                    if Task.isCancelled {
                        quiet.putBack(answers)
                    } else if !answers.isEmpty {
                        logger.warning("could not record checks; their accounts are checked again when their leases end",
                                       metadata: ["accounts": "\(answers.count)", "error": "\(error)"])
                    } else {
                        logger.debug("cannot claim accounts", metadata: ["error": "\(error)"])
                    }
                    claimed = []
                }
                claiming = false
                buffered.add(claimed, claimedAt: claimedAt)
                // A full claim leaves more accounts due: claim again when these are handed out.
                // Otherwise everything due (or due before the next claim) is taken; the next claim,
                // `claimEvery` from now, takes what fell due meanwhile — one round trip each time
                // instead of one for each account that falls due (accounts spread over their
                // intervals fall due one by one).
                if claimed.count < claimSize { idleUntil = .now + Self.claimEvery }
                if !claimed.isEmpty {
                    // This worker takes one; as many others as there are accounts left.
                    wake(claimed.count - 1)
                    continue
                }
            }
            if timedWaiter {
                // Another worker waits for the next claim on a timer: this one waits for work.
                try await idle(until: nil)
            } else {
                timedWaiter = true
                defer { timedWaiter = false }
                try await idle(until: idleUntil)
            }
        }
    }

    /// Wakes up to `count` idle workers, the longest waiting first.
    private func wake(_ count: Int) {
        let woken = waiters.withLock { waiters in
            let ids = waiters.keys.sorted().prefix(count)
            return ids.compactMap { waiters.removeValue(forKey: $0) }
        }
        woken.forEach { $0.resume() }
    }

    /// Waits until `deadline` (nil: no deadline), a wake, a poke or the task's cancellation.
    private func idle(until deadline: ContinuousClock.Instant?) async throws {
        let id = nextWaiter
        nextWaiter += 1
        // The handler and the registration take the same lock, and the task is marked cancelled
        // before its handler runs: either the handler finds the waiter, or the body sees the
        // cancellation and does not wait.
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let registered = waiters.withLock { waiters in
                    guard !Task.isCancelled else { return false }
                    waiters[id] = continuation
                    return true
                }
                guard registered else { return continuation.resume() }
                guard let deadline else { return }
                // Left to fire after a wake: the worker is gone from `waiters` by then.
                _ = LoopTimer.after(ContinuousClock.now.duration(to: deadline)) { [weak self] in
                    self?.waiters.withLock { $0.removeValue(forKey: id) }?.resume()
                }
            }
        } onCancel: {
            waiters.withLock { $0.removeValue(forKey: id) }?.resume()
        }
        try Task.checkCancellation()
    }
}

/// The accounts of the last claim, handed out in order while their lease holds. A worker held up
/// past it (an egress paused by a block) leaves the rest to a new claim: another node may have
/// taken and checked them since, and a check of them here would spend the budget on an answer
/// that is not written (`Store.recordAndClaim` writes only under this node's lease).
struct ClaimedAccounts {
    private var accounts: [Store.ClaimedAccount] = []
    private var claimedAt = ContinuousClock.now

    mutating func add(_ claimed: [Store.ClaimedAccount], claimedAt: ContinuousClock.Instant) {
        accounts.append(contentsOf: claimed)
        self.claimedAt = claimedAt
    }

    /// An account handed out and not checked (its worker was cancelled): first again.
    mutating func putBack(_ account: Store.ClaimedAccount) {
        accounts.insert(account, at: 0)
    }

    /// The next account, or nil when none is left or `lease` has run out since the claim (the
    /// others are then dropped).
    mutating func next(lease: Duration, now: ContinuousClock.Instant = .now) -> Store.ClaimedAccount? {
        guard !accounts.isEmpty else { return nil }
        guard now - claimedAt < lease else {
            accounts.removeAll()
            return nil
        }
        return accounts.removeFirst()
    }
}
