import Foundation
import Logging
import Metrics
import ServiceLifecycle
import TTTAlerts
import TTTDomain
import TTTMetrics
import TTTStore

/// Delivers the outbox: each pending delivery of an event goes to its channel, at least once.
/// A failure is retried with exponential backoff (honouring Retry-After) for up to a day after
/// the event, then marked failed with the reason; a channel that refuses for good fails at once.
/// Pending deliveries survive restarts (they are rows) and a node's death (leases).
public final class DeliveryService: Sendable {
    static let giveUpAfter = Duration.seconds(24 * 3600)

    let node: String
    let store: Store
    let notifiers: [String: any Notifier]
    let logger: Logger
    /// Attempts per channel by outcome: sent, retried, failed.
    let attempts: [String: (sent: Counter, retried: Counter, failed: Counter)]
    /// Rung when an alert is recorded (on any node); the outbox is looked at on its own only every
    /// `idleLook`, for retries falling due, leases run out on a dead node, a missed announcement.
    public let wakeup = Wakeup()
    static let idleLook = Duration.seconds(2)

    public init(node: String, store: Store, notifiers: [any Notifier], logger: Logger) {
        self.node = node
        self.store = store
        var byChannel = [String: any Notifier]()
        for notifier in notifiers { byChannel[notifier.channel] = notifier }
        self.notifiers = byChannel
        self.logger = logger
        attempts = byChannel.mapValues { notifier in
            func counter(_ outcome: String) -> Counter {
                Counter(label: TTTMetric.deliveries.name, dimensions: [("channel", notifier.channel), ("outcome", outcome)])
            }
            return (counter("sent"), counter("retried"), counter("failed"))
        }
    }

    public func run() async {
        guard !notifiers.isEmpty else { return }
        let channels = Array(notifiers.keys)
        while !Task.isShuttingDownGracefully {
            do {
                try await store.releaseDeliveryLeases(node: node)
                break
            } catch {
                if await pause(.seconds(2)) { return }
            }
        }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let due: [Store.PendingDelivery]
            do {
                due = try await store.claimDeliveries(node: node, channels: channels, limit: 20, lease: .seconds(120))
            } catch {
                logger.warning("deliveries: database call failed", metadata: ["reason": "\(error)"])
                if await pause(.seconds(2)) { return }
                continue
            }
            if due.isEmpty {
                await cancelWhenGracefulShutdown { await self.wakeup.wait(atMost: Self.idleLook) }
                if Task.isShuttingDownGracefully { return }
                continue
            }
            // Channels are independent: a slow webhook does not hold the e-mail back.
            await withTaskGroup(of: Void.self) { group in
                for delivery in due {
                    group.addTask { await self.deliver(delivery) }
                }
            }
        }
    }

    private func deliver(_ delivery: Store.PendingDelivery) async {
        guard let notifier = notifiers[delivery.channel] else { return }
        let outcome: Store.DeliveryOutcome
        do {
            try await notifier.deliver(event: Array(delivery.payload.utf8), type: delivery.type,
                                       deliveryID: "tttd_evt_\(delivery.eventID)")
            outcome = .delivered
            logger.info("delivered", metadata: [
                "channel": "\(delivery.channel)", "event_id": "\(delivery.eventID)", "type": "\(delivery.type)"])
        } catch {
            outcome = Self.outcome(for: error, delivery: delivery)
            switch outcome {
            case .failed(let reason):
                logger.error("delivery failed for good", metadata: [
                    "channel": "\(delivery.channel)", "event_id": "\(delivery.eventID)", "reason": "\(reason)"])
            case .retry(let after, let reason):
                logger.warning("delivery failed; will retry", metadata: [
                    "channel": "\(delivery.channel)", "event_id": "\(delivery.eventID)", "reason": "\(reason)",
                    "retry_in": "\(after)", "attempt": "\(delivery.attempts + 1)"])
            case .delivered:
                break
            }
        }
        let counters = attempts[delivery.channel]
        switch outcome {
        case .delivered: counters?.sent.increment()
        case .retry: counters?.retried.increment()
        case .failed: counters?.failed.increment()
        }
        var delay = Duration.milliseconds(500)
        for _ in 0..<6 {
            do {
                try await store.finishDelivery(delivery.id, outcome: outcome)
                return
            } catch {
                // Not recorded: the lease runs out and it is sent again (at least once, never lost).
                try? await Task.sleep(for: delay)
                delay = delay * 2
            }
        }
    }

    static func outcome(for error: DeliveryError, delivery: Store.PendingDelivery, now: Date = Date()) -> Store.DeliveryOutcome {
        switch error {
        case .permanent(let reason):
            return .failed(error: reason)
        case let .retriable(reason, retryAfter):
            let age = now.timeIntervalSince(delivery.eventCreatedAt)
            if age >= giveUpAfter.asSeconds {
                return .failed(error: "gave up after 24 h and \(delivery.attempts + 1) attempts: \(reason)")
            }
            return .retry(after: max(retryAfter ?? .zero, backoff(attempt: delivery.attempts)), error: reason)
        }
    }

    /// 30 s, 1 min, 2 min, … up to an hour, with ±10 % jitter so retries do not arrive together.
    static func backoff(attempt: Int) -> Duration {
        let seconds = min(30 * pow(2, Double(min(attempt, 10))), 3600)
        return .milliseconds(Int(seconds * Double.random(in: 0.9...1.1) * 1000))
    }

    private func pause(_ duration: Duration) async -> Bool {
        do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: duration) } } catch { return true }
        return Task.isShuttingDownGracefully
    }
}
