import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import TTTDomain

public struct SimConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port (see `onListening`).
    public var port = 8089
    /// Pre-created accounts `sim0 … sim{N-1}`.
    public var accounts = 0
    /// Seeds room/user ids and fault draws; random when nil.
    public var seed: UInt64?
    /// Key for stream URL signs; random per process when nil.
    public var signingKey: [UInt8]?
    public var ffmpeg = "ffmpeg"
    /// How far ahead of real time stream clients are kept (the first batch is a burst this long).
    public var streamLeadMs = 1000
    /// Stream pacing: one write per client every this many milliseconds.
    public var streamBatchMs = 200

    public init(host: String = "127.0.0.1", port: Int = 8089, accounts: Int = 0, seed: UInt64? = nil) {
        self.host = host
        self.port = port
        self.accounts = accounts
        self.seed = seed
    }
}

/// The TikTok emulator: its state, faults and stats, and the HTTP application serving them.
/// Everything hangs off one instance (no globals), so tests run several side by side.
public final class Simulator: Sendable {
    public let configuration: SimConfiguration
    public let state: SimState
    public let faults: FaultBoard
    public let stats: RequestStats
    public let audio: AudioLibrary
    public let urls: StreamURLs
    public let logger: Logger
    /// The start of the simulated day: schedule times count from here.
    public let startedAt: ContinuousClock.Instant
    private let boundPort: Mutex<Int?>

    public init(configuration: SimConfiguration, logger: Logger = Logger(label: "tttsim")) {
        self.configuration = configuration
        let random = SeededRandom(seed: configuration.seed)
        state = SimState(random: random.derived(1))
        faults = FaultBoard(random: random.derived(2))
        stats = RequestStats()
        audio = AudioLibrary(encoder: AudioEncoder(ffmpeg: configuration.ffmpeg))
        urls = StreamURLs(signer: configuration.signingKey.map(StreamSigner.init(key:)) ?? .random())
        self.logger = logger
        startedAt = .now
        boundPort = Mutex(nil)
        for index in 0..<max(0, configuration.accounts) {
            state.upsertAccount(username: "sim\(index)")
        }
    }

    /// The port the server listens on (the configured one until it is bound).
    public var port: Int { boundPort.withLock { $0 } ?? configuration.port }

    /// Encodes the audio (once per file), then starts the live.
    public func startLive(username: String, title: String? = nil, audio path: String? = nil, loop: Bool = false) async throws -> Live {
        try state.checkCanGoLive(username)
        let encoded = try await audio.audio(file: path)
        // Silence is a short clip: it always loops, for as long as the live lasts.
        let live = try state.startLive(username: username, title: title, audio: encoded, audioPath: path, loop: loop || path == nil)
        logger.info("live started", metadata: [
            "username": "\(live.username)", "room_id": "\(live.roomId)", "audio": "\(path ?? "silence")",
        ])
        return live
    }

    public func makeRouter() -> Router<SimContext> {
        let router = Router(context: SimContext.self)
        router.add(middleware: FaultMiddleware(faults: faults, stats: stats))
        var streamer = LiveStreamer(state: state, faults: faults, stats: stats)
        streamer.leadMs = configuration.streamLeadMs
        streamer.batchMs = configuration.streamBatchMs
        TikTokEndpoints(state: state, urls: urls, streamer: streamer, boundPort: { [self] in self.port }).register(on: router)
        ControlAPI(simulator: self).register(on: router)
        return router
    }

    /// The HTTP application. `onListening` gets the bound host and port once the socket listens.
    public func makeApplication(
        logger: Logger? = nil,
        onListening: @escaping @Sendable (String, Int) async -> Void = { _, _ in }
    ) -> some ApplicationProtocol {
        let host = configuration.host
        return Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(host, port: configuration.port), serverName: nil),
            onServerRunning: { [self] channel in
                let port = channel.localAddress?.port ?? self.configuration.port
                self.boundPort.withLock { $0 = port }
                await onListening(host, port)
            },
            logger: logger ?? self.logger
        )
    }

    /// Runs the server and the schedule until SIGTERM/SIGINT.
    public func run(schedule: [ScheduleEntry] = [], serverLogger: Logger? = nil,
                    onListening: @escaping @Sendable (String, Int) async -> Void) async throws {
        let app = makeApplication(logger: serverLogger, onListening: onListening)
        // Shut down in reverse order: the schedule first, then the server (whose streams end
        // at their next batch once shutdown begins).
        let group = ServiceGroup(configuration: .init(
            services: [app, SimulatorService(simulator: self, schedule: schedule)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}

/// Background work beside the server: encodes the silence and the schedule's audio ahead of
/// time, then plays the schedule.
struct SimulatorService: Service {
    let simulator: Simulator
    let schedule: [ScheduleEntry]
    /// Waits until an instant; tests replace it to play a schedule without waiting.
    var sleep: @Sendable (ContinuousClock.Instant) async throws -> Void = { try await Task.sleep(until: $0, clock: .continuous) }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                group.addTask { await self.warmUp() }
                for entry in self.schedule {
                    group.addTask { await self.play(entry) }
                }
            }
        }
        // A service that returns ends the group: stay until shutdown.
        try? await gracefulShutdown()
    }

    private func warmUp() async {
        for path in [nil] + Set(schedule.compactMap(\.audio)).sorted() {
            do {
                _ = try await simulator.audio.audio(file: path)
            } catch {
                simulator.logger.error("cannot encode audio", metadata: ["audio": "\(path ?? "silence")", "error": "\(error)"])
            }
        }
    }

    func play(_ entry: ScheduleEntry) async {
        let logger = simulator.logger
        do {
            try await sleep(simulator.startedAt + .milliseconds(Int64(entry.start_s * 1000)))
        } catch {
            return
        }
        simulator.state.upsertAccount(username: entry.username)
        let live: Live
        do {
            live = try await simulator.startLive(username: entry.username, title: entry.title, audio: entry.audio, loop: entry.loop ?? true)
        } catch {
            logger.warning("schedule: cannot start live", metadata: ["username": "\(entry.username)", "error": "\(error)"])
            return
        }
        logger.info("schedule: live for \(entry.duration_s) s", metadata: ["username": "\(live.username)", "room_id": "\(live.roomId)"])
        do {
            try await sleep(.now + .milliseconds(Int64(entry.duration_s * 1000)))
        } catch {
            return
        }
        do {
            _ = try simulator.state.endLive(username: live.username, roomId: live.roomId)
            logger.info("schedule: live ended", metadata: ["username": "\(live.username)", "room_id": "\(live.roomId)"])
        } catch {
            logger.info("schedule: live already ended", metadata: ["username": "\(live.username)", "room_id": "\(live.roomId)"])
        }
    }
}
