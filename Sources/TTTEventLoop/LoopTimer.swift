import NIOCore
import NIOPosix

/// A callback on an event loop's timer: for a deadline that only has to fire when nothing else
/// happened first, without a task of its own to sleep and wake. A scheduled callback, not a
/// scheduled task: no promise and future are made for a result nobody reads.
public struct LoopTimer: Sendable {
    private let scheduled: NIOScheduledCallback?

    /// Runs `body` on one of the loops after `delay`, unless cancelled first. Never runs when the
    /// loops are already shut down (the process is ending).
    public static func after(_ delay: Duration, _ body: @escaping @Sendable () -> Void) -> LoopTimer {
        let loop = MultiThreadedEventLoopGroup.singleton.any()
        return LoopTimer(scheduled: try? loop.scheduleCallback(in: TimeAmount(delay), handler: Callback(body: body)))
    }

    public func cancel() {
        scheduled?.cancel()
    }

    private struct Callback: NIOScheduledCallbackHandler, Sendable {
        let body: @Sendable () -> Void

        func handleScheduledCallback(eventLoop: some EventLoop) {
            body()
        }
    }
}
