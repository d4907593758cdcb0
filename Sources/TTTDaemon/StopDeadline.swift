import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// A bound on stopping. systemd kills tttd `TimeoutStopSec` after SIGTERM, and a part that never
/// finishes stopping would leave nothing in the log to say which. From the first stage entered on, tttd
/// has `limit` to exit; past it, this logs the stage it was still in and exits with status 1, so that the
/// journal names what hung and systemd records a failed stop rather than a kill.
public final class StopDeadline: Sendable {
    private let limit: Duration
    private let logger: Logger
    private let state = Mutex<(stage: String?, armed: Bool)>((nil, false))

    public init(limit: Duration, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    /// Says what tttd is stopping now; the first call starts the clock.
    public func enter(_ stage: String) {
        let first = state.withLock { state in
            state.stage = stage
            defer { state.armed = true }
            return !state.armed
        }
        logger.debug("stopping \(stage)")
        if first { arm() }
    }

    /// `service`, which enters `stage` when the group asks it to shut down (the group asks its
    /// services one after the other, in reverse order, each once the one before has finished).
    public func watching(_ service: some Service, as stage: String) -> some Service {
        Stage(service: service, stage: stage, deadline: self)
    }

    /// A thread of its own: the stuck part may be the concurrency pool itself.
    private func arm() {
        let limit = limit
        Thread.detachNewThread { [self] in
            Thread.sleep(forTimeInterval: Double(limit.components.seconds))
            let stage = state.withLock { $0.stage } ?? "?"
            logger.error("tttd did not stop within \(limit.components.seconds) s: still stopping \(stage); exiting")
            _exit(1)
        }
    }

    private struct Stage<Wrapped: Service>: Service, CustomStringConvertible {
        let service: Wrapped
        let stage: String
        let deadline: StopDeadline

        var description: String { stage }

        func run() async throws {
            try await withGracefulShutdownHandler {
                try await service.run()
            } onGracefulShutdown: { [deadline, stage] in
                deadline.enter(stage)
            }
        }
    }
}
