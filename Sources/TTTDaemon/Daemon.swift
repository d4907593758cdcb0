import CShims
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import TTTConfig
import TTTDetection
import TTTDomain
import TTTEventLoop
import TTTStore
import TTTSystemd
import TTTModeration
import TTTTranscription
import UnixSignals

/// tttd's own service: waits for the database and migrates it, opens the control socket, tells systemd
/// it is ready, then keeps the status, the watchdog and SIGHUP reloads going until a graceful shutdown.
public struct DaemonService: Service, CustomStringConvertible {
    public var description: String { "tttd" }

    let configPath: String
    let settings: Settings
    let store: Store
    let notifier: SystemdNotifier
    let logger: Logger
    let logLevel: SharedLogLevel
    let detection: DetectionService?
    let pipelines: PipelineSupervisor?
    let moderation: AnalysisWiring.Parts?
    let retention: RetentionService

    /// The part of the configuration that SIGHUP may change, shared with the running parts.
    final class Settings: Sendable {
        let current: Mutex<TTTConfiguration>
        init(_ configuration: TTTConfiguration) { current = Mutex(configuration) }
        var value: TTTConfiguration { current.withLock { $0 } }
    }

    public init(configPath: String, configuration: TTTConfiguration, store: Store, detection: DetectionService?,
                pipelines: PipelineSupervisor?, moderation: AnalysisWiring.Parts?, notifier: SystemdNotifier,
                logLevel: SharedLogLevel, logger: Logger) {
        self.detection = detection
        self.moderation = moderation
        self.retention = RetentionService(store: store, retention: configuration.retention, logger: logger)
        self.pipelines = pipelines
        self.configPath = configPath
        self.settings = Settings(configuration)
        self.store = store
        self.notifier = notifier
        self.logLevel = logLevel
        self.logger = logger
    }

    public func run() async throws {
        let configuration = settings.value
        let status = StatusBoard(store: store, notifier: notifier, logger: logger,
                                 pipelineCount: { [pipelines] in pipelines?.activeCount ?? 0 })
        let roles = RoleResolver(adminGroup: configuration.control.adminGroup, viewerGroup: configuration.control.viewerGroup)
        warnAboutMissingGroups(roles.current)
        // Trap SIGHUP now: its default action would end tttd while it still waits for the database.
        let hangups = await UnixSignalsSequence(trapping: .sighup)

        try await withGracefulShutdownHandler {
            guard try await prepareDatabase(status: status) else { return }
            // Before anything works under the node's id (leases freed at start, pipelines taken back).
            let runMarker = configuration.control.socket + ".run"
            if let detection { guard try await detection.claimNodeID(runMarker: runMarker) else { return } }
            if let moderation { try await syncChannels(moderation.channels) }
            let announcer = WorkAnnouncer(pipelines: pipelines?.wakeup, analysis: moderation?.analysis?.wakeup,
                                          delivery: moderation?.delivery.wakeup, channels: moderation?.channels ?? [])
            let feed = EventFeed(store: store, logger: logger, announce: announcer.announce)
            let server = ControlServer(
                path: configuration.control.socket, viewerGroup: { roles.current.viewer },
                methods: ControlMethods(store: store, status: status, roles: roles, detection: detection, feed: feed,
                                       pipelines: pipelines, analysis: moderation?.analysis,
                                       analysisOff: moderation?.unavailable, logger: logger),
                logger: logger)
            let channel = try await server.bind()
            // Only now: a second tttd on this host and socket stops at the bind, before it would note its run.
            detection?.noteRun(runMarker: runMarker)
            await status.refresh()
            notifier.ready(status: await status.statusLine)
            logger.notice("tttd ready", metadata: [
                "socket": "\(configuration.control.socket)", "version": "\(TTTVersion.current)",
                "schema": "\(Store.schemaVersion)"])

            try await withThrowingDiscardingTaskGroup { group in
                group.addTask { try await server.serve(channel) }
                group.addTask { await refreshStatus(status) }
                if let interval = SystemdNotifier.watchdogInterval() {
                    group.addTask { await pingWatchdog(every: interval, status: status) }
                }
                group.addTask { await reloadOnHangup(hangups, roles: roles, status: status) }
                group.addTask { await feed.run() }
                group.addTask { await retention.run() }
                group.addTask { await returnFreedMemory() }
                if let detection { group.addTask { try await detection.run() } }
                if let pipelines { group.addTask { await pipelines.run() } }
                if let moderation {
                    if let analysis = moderation.analysis { group.addTask { await analysis.run() } }
                    group.addTask { await moderation.delivery.run() }
                }
            }
        } onGracefulShutdown: {
            notifier.stopping(status: "stopping")
            logger.notice("stopping")
        }
    }

    /// Migrates, retrying with backoff while the database is away. Returns false on shutdown; throws
    /// when retrying cannot help (a schema newer than this binary).
    private func prepareDatabase(status: StatusBoard) async throws -> Bool {
        var delay = Duration.seconds(1)
        var attempt = 0
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            attempt += 1
            do {
                let applied = try await cancelWhenGracefulShutdown { try await migrateWatched() }
                if !applied.isEmpty {
                    logger.notice("database schema migrated", metadata: ["versions": "\(applied.map(String.init).joined(separator: ","))"])
                }
                return true
            } catch {
                if let error = error as? StoreError, case .schemaTooNew = error { throw error }
                if Task.isShuttingDownGracefully || Task.isCancelled { break }
                let reason = "\(error)"
                logger.error("waiting for the database", metadata: [
                    "reason": "\(reason)", "attempt": "\(attempt)", "retry_in": "\(delay)"])
                notifier.status("waiting for the database (\(reason)); retry \(attempt) in \(delay)")
                // systemd would otherwise kill a start that takes longer than TimeoutStartSec.
                notifier.extendTimeout(seconds: Int(delay.asSeconds) + 30)
                let wait = delay
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                delay = min(delay * 2, .seconds(30))
            }
        }
        return false
    }

    /// A migration has no deadline (a step on months of history may take minutes), so while it runs
    /// tttd says every few seconds what it waits for and asks systemd for more start-up time, as
    /// long as the database answers a ping; after three unanswered pings in a row it gives the
    /// migration up (closing its connection rolls it back) and the caller tries again.
    private func migrateWatched() async throws -> [Int] {
        let step = MigrationProgress()
        let started = ContinuousClock.now
        return try await withThrowingTaskGroup(of: [Int].self) { group in
            group.addTask { [store] in try await store.migrate(progress: { now in step.latest.withLock { $0 = now } }) }
            group.addTask { [store, logger, notifier] in
                var unanswered = 0
                while true {
                    try await LoopSleep.sleep(for: Self.migrationReportEvery)
                    do {
                        try await store.ping()
                        unanswered = 0
                    } catch {
                        unanswered += 1
                        if unanswered == 3 { throw StoreError.unavailable("no answer to three pings during the schema migration") }
                        continue
                    }
                    let doing = switch step.latest.withLock({ $0 }) {
                    case nil: "reading the schema version"
                    case .waitingForOtherNode: "waiting for another tttd to finish migrating it"
                    case let .applying(version, name): "applying version \(version) (\(name))"
                    }
                    let elapsed = Int((ContinuousClock.now - started).asSeconds)
                    logger.notice("still migrating the database schema", metadata: ["step": "\(doing)", "elapsed_s": "\(elapsed)"])
                    notifier.status("migrating the database schema: \(doing), \(elapsed) s so far")
                    notifier.extendTimeout(seconds: Int(Self.migrationReportEvery.asSeconds) + 30)
                }
            }
            defer { group.cancelAll() }
            // The migration's versions, or the watch's error.
            return try await group.next() ?? []
        }
    }

    private static let migrationReportEvery = Duration.seconds(5)

    private final class MigrationProgress: Sendable {
        let latest = Mutex<Store.MigrationStep?>(nil)
    }

    /// The delivery channels of this configuration, so that events queue their deliveries.
    private func syncChannels(_ channels: [Store.Channel]) async throws {
        var delay = Duration.seconds(1)
        while !Task.isShuttingDownGracefully {
            do {
                try await store.syncChannels(channels)
                return
            } catch {
                logger.warning("cannot record the alert channels yet", metadata: ["reason": "\(error)"])
                let wait = delay
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: wait) }
                delay = min(delay * 2, .seconds(30))
            }
        }
    }

    private func refreshStatus(_ status: StatusBoard) async {
        // One watch for the whole loop, and the loop's timer rather than Dispatch's.
        try? await cancelWhenGracefulShutdown {
            while true {
                try await LoopSleep.sleep(for: .seconds(5))
                await status.refresh()
            }
        }
    }

    /// glibc keeps the memory a burst of work (a big `accounts list`, a backlog drained) freed,
    /// so RSS would stay at its peak for months; give it back every half minute.
    private func returnFreedMemory() async {
        try? await cancelWhenGracefulShutdown {
            while true {
                try await LoopSleep.sleep(for: .seconds(30))
                ttt_malloc_trim()
            }
        }
    }

    /// Pings only while the event loops answer and the status loop (whose database calls have deadlines)
    /// keeps completing. A database outage alone does not stop the pings: restarting tttd would not help it.
    private func pingWatchdog(every interval: Duration, status: StatusBoard) async {
        let loops = MultiThreadedEventLoopGroup.singleton
        while !Task.isShuttingDownGracefully {
            var healthy = await status.lastRefresh.duration(to: .now) < .seconds(30)
            for loop in loops.makeIterator() where healthy {
                healthy = await eventLoopAnswers(loop, within: .seconds(2))
            }
            if healthy { notifier.watchdog() } else { logger.warning("watchdog: a part of tttd is stuck; not pinging systemd") }
            do { try await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) } } catch { return }
        }
    }

    private func eventLoopAnswers(_ loop: any EventLoop, within limit: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask { (try? await loop.submit { true }.get()) ?? false }
            group.addTask { try? await Task.sleep(for: limit); return false }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    /// SIGHUP re-reads the configuration file, applies what can change while running, and says
    /// what changed and what waits for a restart.
    private func reloadOnHangup(_ hangups: UnixSignalsSequence, roles: RoleResolver, status: StatusBoard) async {
        for await _ in hangups.cancelOnGracefulShutdown() {
            notifier.reloading(status: "reloading the configuration")
            let outcome = await reload(roles: roles)
            notifier.ready(status: outcome)
            await status.republish()
        }
    }

    /// Returns the STATUS= line that says how the reload went.
    private func reload(roles: RoleResolver) async -> String {
        let new: TTTConfiguration
        do { new = try await ConfigLoader.load(path: configPath) } catch {
            let problems = error.problems.map(\.description)
            logger.error("configuration not reloaded: \(problems.joined(separator: "; "))")
            return "configuration not reloaded: \(problems.first ?? "invalid") (see the log)"
        }
        let old = settings.value
        let changes = old.changes(to: new)
        var applied = old
        apply(reloadable: new, to: &applied)
        settings.current.withLock { $0 = applied }
        roles.update(adminGroup: applied.control.adminGroup, viewerGroup: applied.control.viewerGroup)
        await detection?.update(DetectionService.Settings(applied))
        pipelines?.update(PipelineSupervisor.Settings(applied))
        moderation?.analysis?.update(AnalysisService.Settings(applied))
        retention.update(applied.retention)
        logLevel.set(Logger.Level(rawValue: applied.log.level) ?? .info)
        if changes.reloadable.isEmpty && changes.needRestart.isEmpty {
            logger.notice("configuration reloaded: nothing changed")
        } else if !changes.reloadable.isEmpty {
            logger.notice("configuration reloaded", metadata: ["changed": "\(changes.reloadable.joined(separator: ","))"])
        }
        if !changes.needRestart.isEmpty {
            logger.warning("these settings change only after a restart: \(changes.needRestart.joined(separator: ", "))")
        }
        return "configuration reloaded"
    }

    /// Everything except what needs a restart (`TTTConfiguration.restartOnlyKeys` and database.*).
    private func apply(reloadable new: TTTConfiguration, to current: inout TTTConfiguration) {
        let old = current
        current = new
        current.database = old.database
        current.control.socket = old.control.socket
        current.metrics = old.metrics
        current.tiktok.webURL = old.tiktok.webURL
        current.tiktok.webcastURL = old.tiktok.webcastURL
        current.tiktok.proxies = old.tiktok.proxies
        current.tiktok.concurrency = old.tiktok.concurrency
        current.secrets.databasePassword = old.secrets.databasePassword
        current.secrets.tiktokSession = old.secrets.tiktokSession
        current.transcription.baseURL = old.transcription.baseURL
        current.secrets.transcriptionAPIKey = old.secrets.transcriptionAPIKey
        current.analysis.enabled = old.analysis.enabled
        current.analysis.baseURL = old.analysis.baseURL
        current.analysis.model = old.analysis.model
        current.analysis.temperature = old.analysis.temperature
        current.analysis.prompt = old.analysis.prompt
        current.alerts.email = old.alerts.email
        current.alerts.webhooks = old.alerts.webhooks
        current.secrets.analysisAPIKey = old.secrets.analysisAPIKey
        current.secrets.smtpPassword = old.secrets.smtpPassword
        current.secrets.webhookSecrets = old.secrets.webhookSecrets
    }

    private func warnAboutMissingGroups(_ groups: RoleResolver.Groups) {
        if groups.admin == nil {
            logger.warning("admin group \(groups.adminName) does not exist: only root can change things")
        }
        if groups.viewer == nil {
            logger.warning("viewer group \(groups.viewerName) does not exist: the control socket stays with tttd's own group")
        }
    }
}
