import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TTTDomain
import TTTStore

/// Runs one pipeline per open live, up to `maxPipelines` capturing on this node. Lives are claimed
/// with leases (several nodes may share the database); a live that ends, an admin's stop, or a
/// lease taken over by another node stops its pipeline. A pipeline still transcribing an ended
/// live's last windows holds no slot, so a slow ASR cannot keep new lives from being captured. A
/// live refused for capacity is announced once and gets a pipeline as soon as a slot frees.
public final class PipelineSupervisor: Sendable {
    public struct Settings: Sendable, Equatable {
        public var enabled: Bool
        public var maxPipelines: Int
        public var window: Duration
        public var model: String
        public var language: String?
        /// Whether analysis runs: windows with words are then queued for it.
        public var analyse: Bool
        /// A pipeline without audio for this long ends as failed; the live gets another a minute later.
        public var giveUpAfter: Duration

        public init(enabled: Bool, maxPipelines: Int, window: Duration, model: String, language: String?, analyse: Bool,
                    giveUpAfter: Duration = .seconds(300)) {
            self.analyse = analyse
            self.giveUpAfter = giveUpAfter
            self.enabled = enabled
            self.maxPipelines = maxPipelines
            self.window = window
            self.model = model
            self.language = language
        }
    }

    public struct Dependencies: Sendable {
        public var store: Store
        public var transcriber: any Transcriber
        public var locator: any StreamLocator
        /// Nil when ffmpeg is missing: each live is then announced as failed, with that reason.
        public var capture: FFmpegCapture?
        public var spillDirectory: URL?

        public init(store: Store, transcriber: any Transcriber, locator: any StreamLocator, capture: FFmpegCapture?,
                    spillDirectory: URL?) {
            self.store = store
            self.transcriber = transcriber
            self.locator = locator
            self.capture = capture
            self.spillDirectory = spillDirectory
        }
    }

    let node: String
    let dependencies: Dependencies
    let logger: Logger
    let lease: Duration
    /// How often it looks on its own: for leases that ran out on a dead node, stream URLs and stop
    /// requests recorded elsewhere. Lives that start or end, and a pipeline of its own that ends,
    /// ring `wakeup` instead.
    let poll: Duration
    public let wakeup = Wakeup()
    private let settings: Mutex<Settings>
    private let running = Mutex<[Int64: Pipeline]>([:])
    private let metrics = TranscriptionMetrics()

    public init(node: String, settings: Settings, dependencies: Dependencies, logger: Logger,
                lease: Duration = .seconds(60), poll: Duration = .seconds(2)) {
        self.node = node
        self.settings = Mutex(settings)
        self.dependencies = dependencies
        self.logger = logger
        self.lease = lease
        self.poll = poll
    }

    public func update(_ new: Settings) {
        settings.withLock { $0 = new }
    }

    public var activeCount: Int { running.withLock { $0.count } }

    public func snapshots() async -> [Pipeline.Snapshot] {
        let pipelines = running.withLock { Array($0.values) }
        var snapshots = [Pipeline.Snapshot]()
        for pipeline in pipelines { snapshots.append(await pipeline.snapshot()) }
        return snapshots.sorted { $0.id < $1.id }
    }

    /// An admin's stop: no pipeline runs for that live again. False when no such pipeline runs.
    public func stop(pipelineID: Int64, by user: String) async throws(StoreError) -> Bool {
        guard let liveID = try await dependencies.store.requestPipelineStop(pipelineID) else { return false }
        let local = running.withLock { $0[liveID] }
        local?.stop(.init(reason: "stopped by \(user)", drain: true))
        return true
    }

    /// The recent audio of a live's running pipeline (for evidence clips).
    public func clip(liveID: Int64, from start: Double, to end: Double) -> [Int16]? {
        running.withLock { $0[liveID] }?.clip(from: start, to: end)
    }

    public func run() async {
        await releaseOwnLeases()
        await withDiscardingTaskGroup { group in
            while !Task.isShuttingDownGracefully && !Task.isCancelled {
                await superviseOnce { pipeline in
                    group.addTask {
                        await pipeline.run()
                        _ = self.running.withLock { $0.removeValue(forKey: pipeline.claim.liveID) }
                        // Its capture slot is free for a live that waits.
                        self.wakeup.ring()
                    }
                }
                await cancelWhenGracefulShutdown { await self.wakeup.wait(atMost: self.poll) }
            }
            // tttd is stopping: what is cut but not transcribed is recorded as skipped, quickly.
            for pipeline in running.withLock({ Array($0.values) }) {
                pipeline.stop(.init(reason: "tttd stopping", drain: false))
            }
        }
    }

    /// Pipelines that died with a previous run of this node are recorded as failed; their lives are claimable again.
    private func releaseOwnLeases() async {
        var delay = Duration.seconds(1)
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await dependencies.store.releasePipelineLeases(node: node)
                return
            } catch {
                logger.warning("pipelines: waiting for the database", metadata: ["reason": "\(error)"])
                let wait = delay
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    private func superviseOnce(start: (Pipeline) -> Void) async {
        let settings = self.settings.withLock { $0 }
        let store = dependencies.store
        let current = running.withLock { $0 }
        do {
            let states = try await store.renewPipelines(node: node, liveIDs: Array(current.keys), lease: lease)
            for (liveID, pipeline) in current {
                guard let state = states[liveID] else {
                    pipeline.stop(.init(reason: "another node took this live over", drain: false))
                    continue
                }
                pipeline.streamURLChanged(state.streamURL)
                if state.ended {
                    pipeline.stop(.init(reason: "live ended", drain: true))
                } else if state.stopRequested {
                    pipeline.stop(.init(reason: "stopped by an admin", drain: true))
                } else if !settings.enabled {
                    pipeline.stop(.init(reason: "transcription disabled", drain: true))
                }
            }
            guard settings.enabled else { return }
            guard let capture = dependencies.capture else {
                try await store.announceRefusals(reason: "not started: ffmpeg was not found in PATH")
                return
            }
            let free = settings.maxPipelines - current.values.filter(\.holdsCaptureSlot).count
            if free <= 0 {
                try await store.announceRefusals(reason:
                    "not started: transcription.max_pipelines (\(settings.maxPipelines)) pipelines already run on this node")
                return
            }
            for claim in try await store.claimPipelines(node: node, limit: free, lease: lease) {
                let id = try await store.startPipeline(liveID: claim.liveID, node: node)
                let pipeline = makePipeline(id: id, claim: claim, settings: settings, capture: capture)
                running.withLock { $0[claim.liveID] = pipeline }
                logger.notice("pipeline started", metadata: [
                    "live_id": "\(claim.liveID)", "pipeline_id": "\(id)", "account": "\(claim.username)"])
                start(pipeline)
            }
        } catch {
            logger.warning("pipelines: database call failed", metadata: ["reason": "\(error)"])
        }
    }

    private func makePipeline(id: Int64, claim: Store.PipelineClaim, settings: Settings, capture: FFmpegCapture) -> Pipeline {
        Pipeline(id: id, claim: claim, node: node,
                 settings: .init(window: settings.window, model: settings.model, language: settings.language,
                                 spillDirectory: dependencies.spillDirectory, analyse: settings.analyse,
                                 giveUpAfter: settings.giveUpAfter),
                 recorder: dependencies.store, transcriber: dependencies.transcriber,
                 capture: capture, locator: dependencies.locator, metrics: metrics, logger: logger)
    }
}
