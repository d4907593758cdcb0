import CShims
import NIOCore
import NIOPosix

/// Runs Swift concurrency's tasks on NIO's event loops (the singleton group the database, HTTP and
/// socket connections already use) instead of on Dispatch's pool: the loop that reads an answer
/// resumes the task that waits for it, on the same thread. A sleep still ends on Dispatch's timer
/// thread (the runtime does not route sleeps through this hook); the sleeps taken on every check
/// use `LoopSleep`.
public enum EventLoopExecutor {
    /// Call once, first thing in `main`, before any task runs. False if another hook was set first.
    @discardableResult
    public static func install() -> Bool {
        ttt_install_global_executor { job in
            guard let job else { return }
            // `any()` is the loop the caller runs on, when it runs on one of the group's loops.
            MultiThreadedEventLoopGroup.singleton.any().enqueue(ExecutorJob(unsafeBitCast(job, to: UnownedJob.self)))
        } == 1
    }
}
