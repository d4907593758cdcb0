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
            let global = GlobalJob(job: job)
            // `any()` is the loop the caller runs on, when it runs on one of the group's loops.
            // Not `enqueue(ExecutorJob)`: that runs the job isolated to the loop's serial executor,
            // so every later await in nonisolated code, and every actor call, would be a new job
            // (24 a check at 1,000 accounts, measured; 5 now) where the generic executor switches
            // in place.
            MultiThreadedEventLoopGroup.singleton.any().execute { global.run() }
        } == 1
    }

    /// A job the runtime gave the hook: it runs once, on the loop it was sent to.
    private struct GlobalJob: @unchecked Sendable {
        let job: UnsafeMutableRawPointer

        func run() { ttt_run_job_on_generic_executor(job) }
    }
}
