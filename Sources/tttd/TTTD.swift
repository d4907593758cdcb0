import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import TTTConfig
import TTTAlerts
import TTTAnalysis
import TTTDaemon
import TTTEventLoop
import TTTStore
import TTTSystemd

@main
struct TTTD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tttd",
        abstract: "Watches TikTok accounts, transcribes and judges their lives, and alerts moderators.",
        discussion: "Runs in the foreground (systemd Type=notify). tttctl talks to it over its control socket.",
        version: TTTVersion.current,
        subcommands: [Run.self, CheckConfig.self, Evaluate.self],
        defaultSubcommand: Run.self)
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The configuration file.", valueName: "path"))
    var config: String = ProcessInfo.processInfo.environment["TTTD_CONFIG"] ?? TTTConfiguration.defaultPath
}

/// Loads the configuration or prints every problem and exits 1.
func loadConfiguration(_ path: String) async -> TTTConfiguration {
    do {
        return try await ConfigLoader.load(path: path)
    } catch {
        for problem in error.problems { writeError(problem.description) }
        Foundation.exit(1)
    }
}

func writeError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the daemon (the default).")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        // Before any other task runs: tttd's tasks go on NIO's event loops, not on a pool of their own.
        EventLoopExecutor.install()
        let configuration = await loadConfiguration(options.config)
        let level = SharedLogLevel(Logger.Level(rawValue: configuration.log.level) ?? .info)
        LogBootstrap.bootstrap(identifier: "tttd", level: level)
        let logger = Logger(label: "tttd")
        umask(0o027)
        // Before the parts are built: each makes its metrics as it is built.
        let metrics: MetricsService?
        do { metrics = try await MetricsService.start(configuration.metrics, logger: logger) } catch {
            logger.critical("\(error)")
            Foundation.exit(1)
        }

        let url = configuration.database.url
        let address: Store.Endpoint.Address = url.socketPath.map { .unixSocket(path: $0) }
            ?? .tcp(host: url.host ?? "127.0.0.1", port: url.port)
        let store = Store(
            endpoint: .init(address: address, user: url.user,
                            password: configuration.secrets.databasePassword ?? url.password, database: url.database),
            logger: Logger(label: "tttd.store"))
        // libcurl (e-mail only) is loaded now, before other threads use it: its global set-up is not
        // thread-safe, and a missing library is better told at start than at the first alert.
        if configuration.alerts.email != nil && !Curl.initialize() {
            logger.critical("alerts.email is set but \(Curl.loadError)")
            Foundation.exit(1)
        }
        let notifier = SystemdNotifier()
        let detection = DetectionWiring.make(configuration: configuration, store: store,
                                             logger: Logger(label: "tttd.detection"))
        let transcription = TranscriptionWiring.make(configuration: configuration, store: store,
                                                     tiktok: detection.clients[0], logger: logger)
        let moderation = AnalysisWiring.make(configuration: configuration, store: store,
                                             evidence: transcription.supervisor,
                                             node: DetectionWiring.nodeID(socket: configuration.control.socket), logger: logger)
        let daemon = DaemonService(configPath: options.config, configuration: configuration, store: store,
                                   detection: detection.service, pipelines: transcription.supervisor,
                                   moderation: moderation, notifier: notifier, logLevel: level, logger: logger)
        // Shut down in reverse order: the daemon's parts first, then the metrics endpoint, the database pool
        // last; each stage named, so that a stop that hangs says where (systemd's TimeoutStopSec is 60 s).
        let stopDeadline = StopDeadline(limit: .seconds(50), logger: logger)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: stopDeadline.watching(store.client, as: "the database connections"))]
        if let metrics {
            services.append(.init(service: stopDeadline.watching(metrics, as: "the metrics endpoint"),
                                  successTerminationBehavior: .gracefullyShutdownGroup,
                                  failureTerminationBehavior: .gracefullyShutdownGroup))
        }
        services.append(.init(service: stopDeadline.watching(daemon, as: "the daemon's parts"),
                              successTerminationBehavior: .gracefullyShutdownGroup,
                              failureTerminationBehavior: .gracefullyShutdownGroup))
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
            stopDeadline.enter("the HTTP clients")
            await withDiscardingTaskGroup { clients in
                for client in detection.clients { clients.addTask { await client.shutdown() } }
                clients.addTask { await transcription.transcriber.shutdown() }
                clients.addTask { await moderation.shutdown() }
            }
            logger.notice("tttd stopped")
        } catch {
            logger.critical("tttd failed: \(error)")
            notifier.status("failed: \(error)")
            Foundation.exit(1)
        }
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config", abstract: "Validate the configuration; print every problem with its key and file.")

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = await loadConfiguration(options.config)
        // What the daemon reads besides the file: the prompt template, the alert channels' settings.
        var problems = [String]()
        var notes = [String]()
        // The prompt is checked even while analysis is off (no key yet, say): an operator editing it
        // hears of a mistake now rather than when analysis is turned on. Only its absence is a note then.
        let off = AnalysisWiring.unavailableReason(configuration)
        if let off { notes.append("analysis is off: \(off)") }
        let prompt = configuration.analysis.prompt
        if off == nil || FileManager.default.fileExists(atPath: prompt) {
            do { _ = try PromptTemplate.load(path: prompt) } catch {
                problems.append("\(options.config): analysis.prompt: \(error)")
            }
        } else {
            notes.append("analysis.prompt: \(prompt) does not exist (needed once analysis is on)")
        }
        if let email = configuration.alerts.email {
            do { try EmailNotifier.validate(smtpURL: email.smtpURL) } catch {
                problems.append("\(options.config): alerts.email.smtp_url: \(error)")
            }
        }
        for webhook in configuration.alerts.webhooks {
            if let secret = webhook.secret, (try? WebhookSigner(secret: secret)) == nil {
                problems.append("\(options.config): alerts.webhooks.\(webhook.name): its secret is not whsec_ followed by base64")
            }
        }
        if !problems.isEmpty {
            for problem in problems { writeError(problem) }
            throw ExitCode(1)
        }
        // Secrets describe themselves by name only: "secrets: groq_api_key, …" or "no secrets".
        print("\(options.config): OK (database \(configuration.database.url), \(configuration.secrets))")
        for note in notes { print("note: \(note)") }
    }
}
