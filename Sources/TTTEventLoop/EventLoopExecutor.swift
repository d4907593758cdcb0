import CShims
import NIOCore
import NIOPosix

/// Runs Swift concurrency's tasks, and their sleeps, on NIO's event loops (the singleton group the
/// database, HTTP and socket connections already use) instead of on Dispatch's pool and timers. A
/// task resumed by a socket's answer goes on on the thread that read it, and a sleep ends in the
/// loop's own epoll timeout: a TikTok check no longer wakes other threads to pace, parse and record it.
public enum EventLoopExecutor {
    /// Call once, first thing in `main`, before any task runs. False if another hook was set first.
    @discardableResult
    public static func install() -> Bool {
        ttt_install_global_executor({ job in
            guard let job else { return }
            // `any()` is the loop the caller runs on, when it runs on one of the group's loops.
            MultiThreadedEventLoopGroup.singleton.any().enqueue(ExecutorJob(unsafeBitCast(job, to: UnownedJob.self)))
        }, { pointer, delay in
            guard let pointer else { return }
            let job = unsafeBitCast(pointer, to: UnownedJob.self)
            let loop = MultiThreadedEventLoopGroup.singleton.any()
            loop.scheduleTask(in: .nanoseconds(Int64(min(delay, UInt64(Int64.max))))) { loop.enqueue(ExecutorJob(job)) }
        }) == 1
    }
}
