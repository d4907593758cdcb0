import NIOCore
import NIOPosix

/// A callback on an event loop's timer: for a deadline that only has to fire when nothing else
/// happened first, without a task of its own to sleep and wake.
public struct LoopTimer: Sendable {
    private let scheduled: Scheduled<Void>

    /// Runs `body` on one of the loops after `delay`, unless cancelled first.
    public static func after(_ delay: Duration, _ body: @escaping @Sendable () -> Void) -> LoopTimer {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        return LoopTimer(scheduled: loop.scheduleTask(in: .nanoseconds(delay.nanoseconds)) { body() })
    }

    public func cancel() {
        scheduled.cancel()
    }
}
