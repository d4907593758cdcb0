import Configuration
import Foundation
import SystemPackage
import Yams

/// Builds a `TTTConfiguration` from the file, the `TTTD_*` environment and the credentials
/// directory. It never stops at the first problem: `tttd check-config` must list them all.
public enum ConfigLoader {
    /// `TTTD_*` variables that are not configuration keys: the file's path (read by `tttd`) and the
    /// ffmpeg to run (read by the transcription wiring).
    static let reservedEnvironmentNames: Set<String> = ["TTTD_CONFIG", "TTTD_FFMPEG"]
    /// The largest configuration file read; anything bigger is a mistake.
    static let maximumFileSize = 4 << 20

    /// Reads the file, the environment's TTTD_* overrides and the credentials directory; returns
    /// the configuration or EVERY problem found.
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) async throws(ConfigProblems) -> TTTConfiguration {
        var credentials = Credentials.none
        if let directory = environment["CREDENTIALS_DIRECTORY"], !directory.isEmpty {
            do {
                credentials = .read(try await DirectoryFilesProvider(directoryPath: FilePath(directory)))
            } catch {
                credentials = .unreadable(directory)
            }
        }
        return try load(path: path, environment: environment, credentials: credentials)
    }

    /// The directory systemd hands the secrets in (`CREDENTIALS_DIRECTORY`): the one part read
    /// asynchronously, first.
    enum Credentials {
        case none
        case read(DirectoryFilesProvider)
        case unreadable(String)
    }

    /// `load(path:environment:)` once the credentials directory is read.
    static func load(path: String, environment: [String: String], credentials: Credentials) throws(ConfigProblems) -> TTTConfiguration {
        var problems = ProblemCollector()

        // The file. When it cannot be read or parsed, the environment is still checked, but not
        // what is missing: the file might well hold it.
        var document = YAMLDocument()
        var fileIsUsable = false
        switch readFile(path) {
        case .failure(let error):
            problems.add(ConfigProblem(source: path, key: "", message: "cannot read the file: \(error.message)"),
                             rank: .init(group: 0))
        case .success(let text):
            switch YAMLDocument.parse(text) {
            case .failure(let problem):
                problems.add(ConfigProblem(source: path, key: problem.key, message: problem.message),
                                 rank: .init(group: 0, line: problem.line ?? 0))
            case .success(let parsed):
                document = parsed
                fileIsUsable = true
                for problem in parsed.problems {
                    problems.add(ConfigProblem(source: path, key: problem.key, message: problem.message),
                                     rank: .init(group: 1, line: problem.line ?? Int.max,
                                                 index: KeyCatalogue.index(of: problem.key)))
                }
            }
        }

        // The environment over the file, through one reader: precedence is the reader's job.
        let overrides = environment.filter { $0.key.hasPrefix("TTTD_") && !reservedEnvironmentNames.contains($0.key) }
        let environmentProvider = EnvironmentVariablesProvider(
            environmentVariables: overrides,
            secretsSpecifier: .dynamic { name, _ in
                name.hasPrefix("TTTD_SECRETS_") || name == "TTTD_DATABASE_URL" || name == "TTTD_ALERTS_WEBHOOKS"
            }
        ).prefixKeys(with: ConfigKey(["tttd"]))
        let fileProvider = InMemoryProvider(name: path, values: document.values)
        var values = ValueReader(
            reader: ConfigReader(providers: [environmentProvider, fileProvider]),
            environment: overrides, path: path, lines: document.lines, problems: problems)

        // database.url is the one required key.
        var databaseURL: DatabaseURL?
        if let text = values.text("database.url"), !text.trimmingWhitespace().isEmpty {
            do {
                databaseURL = try DatabaseURL(parsing: text.trimmingWhitespace())
            } catch {
                values.report("database.url",
                              "\"\(redactingURLPassword(text))\" is not a usable PostgreSQL URL: \(error.reason)")
            }
        } else if fileIsUsable {
            values.report("database.url", "is required (set it in the file or with TTTD_DATABASE_URL)")
        }

        let control = values.control()
        let tiktok = values.tiktok()
        let detection = values.detection()
        let transcription = values.transcription()
        let analysis = values.analysis()
        let cooldown = values.value("alerts.cooldown", default: TTTConfiguration.Alerts().cooldown, Parse.duration)
        let email = values.email(checkCompleteness: fileIsUsable)

        // Webhooks: the whole list from TTTD_ALERTS_WEBHOOKS (a YAML flow sequence), else the file's.
        var rawWebhooks = document.webhooks ?? []
        var webhooksOrigin = ValueReader.Origin.file
        let webhooksVariable = KeyCatalogue.environmentName("alerts.webhooks")
        if let text = overrides[webhooksVariable] {
            webhooksOrigin = .environment
            rawWebhooks = environmentWebhooks(text, variable: webhooksVariable, values: &values)
        }
        var webhooks = values.webhooks(rawWebhooks, origin: webhooksOrigin)

        let evidence = TTTConfiguration.Evidence(
            directory: values.value("evidence.directory", default: TTTConfiguration.Evidence().directory, Parse.nonEmpty))
        let metrics = TTTConfiguration.Metrics(listen: values.optional("metrics.listen", Parse.hostPort))
        let retention = values.retention()
        let log = TTTConfiguration.Log(
            level: values.value("log.level", default: TTTConfiguration.Log().level, Parse.logLevel))

        let webhookNames = webhooks.map(\.name)
        checkUnknownVariables(overrides, webhookNames: webhookNames, values: &values)
        if webhooksOrigin == .file {  // when the environment replaces the list, file secrets may be left over
            checkWebhookSecretKeys(document, webhookNames: webhookNames, values: &values)
        }

        // Secrets last: they need the webhook names and the database URL.
        var credentialFiles: DirectoryFilesProvider?
        switch credentials {
        case .none:
            break
        case .read(let provider):
            credentialFiles = provider
        case .unreadable(let directory):
            values.problems.add(
                ConfigProblem(source: "credentials", key: "CREDENTIALS_DIRECTORY",
                              message: "cannot read the directory \(directory)"),
                rank: .init(group: 3))
        }
        let inlineSecrets = Dictionary(
            rawWebhooks.compactMap { raw in raw.name.flatMap { name in raw.secret.map { (name, $0) } } },
            uniquingKeysWith: { first, _ in first })
        let secrets = SecretReader(
            credentials: credentialFiles, environment: environmentProvider,
            webhookSecrets: inlineSecrets, file: fileProvider
        ).secrets(databaseURL: databaseURL, webhookNames: webhookNames)
        for index in webhooks.indices {
            webhooks[index].secret = secrets.webhookSecrets[webhooks[index].name]
        }

        guard values.problems.isEmpty, let databaseURL else {
            throw ConfigProblems(problems: values.problems.sorted)
        }
        return TTTConfiguration(
            database: .init(url: databaseURL), control: control, tiktok: tiktok, detection: detection,
            transcription: transcription, analysis: analysis,
            alerts: .init(cooldown: cooldown, email: email, webhooks: webhooks),
            evidence: evidence, metrics: metrics, retention: retention, log: log, secrets: secrets)
    }

    /// The file's text, or why it cannot be read (`No such file or directory`).
    static func readFile(_ path: String) -> Result<String, Invalid> {
        do {
            let descriptor = try FileDescriptor.open(FilePath(path), .readOnly)
            defer { try? descriptor.close() }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 64 << 10)
            while true {
                let count = try buffer.withUnsafeMutableBytes { try descriptor.read(into: $0) }
                if count == 0 { break }
                bytes += buffer[..<count]
                guard bytes.count <= maximumFileSize else {
                    return .failure(Invalid("it is larger than \(maximumFileSize >> 20) MiB"))
                }
            }
            guard let text = String(validating: bytes, as: UTF8.self) else {
                return .failure(Invalid("it is not UTF-8 text"))
            }
            return .success(text)
        } catch let error as Errno {
            return .failure(Invalid(error.description))
        } catch {
            return .failure(Invalid("\(error)"))
        }
    }

    /// `TTTD_ALERTS_WEBHOOKS='[{name: ops, url: "https://…", events: [alert]}]'`.
    private static func environmentWebhooks(_ text: String, variable: String, values: inout ValueReader) -> [RawWebhook] {
        let rank = ProblemCollector.Rank(group: 2, index: KeyCatalogue.index(of: "alerts.webhooks"))
        let node: Node?
        do {
            node = try Yams.compose(yaml: text)
        } catch {
            let problem = YAMLDocument.syntaxProblem(error)
            values.problems.add(ConfigProblem(source: "environment", key: variable,
                                              message: problem.message + " (expected a YAML list like [{name: ops, url: \"https://…\"}])"),
                                rank: rank)
            return []
        }
        guard let node, node.null == nil else { return [] }
        let decoded = YAMLDocument.webhooks(node, key: variable, line: nil)
        for problem in decoded.problems {
            values.problems.add(ConfigProblem(source: "environment", key: problem.key, message: problem.message),
                                rank: .init(group: 2, index: rank.index))
        }
        return decoded.webhooks
    }

    /// A `TTTD_*` variable that is no key would be silently ignored: report it, with the nearest name.
    private static func checkUnknownVariables(_ overrides: [String: String], webhookNames: [String], values: inout ValueReader) {
        let known = KeyCatalogue.keys.map { KeyCatalogue.environmentName($0.path) }
        let webhookSecretNames = webhookNames.map { KeyCatalogue.environmentName(KeyCatalogue.webhookSecretPrefix + $0) }
        let allKnown = Set(known + webhookSecretNames)
        let webhookSecretFamily = KeyCatalogue.environmentName(KeyCatalogue.webhookSecretPrefix)
        for name in overrides.keys.sorted() where !allKnown.contains(name) {
            let message: String
            if name.hasPrefix(webhookSecretFamily) {
                message = "no webhook in alerts.webhooks has this name"
            } else {
                message = unknown(KeyCatalogue.suggestion(for: name, among: known + [webhookSecretFamily + "<NAME>"]),
                                  what: "variable")
            }
            values.problems.add(ConfigProblem(source: "environment", key: name, message: message),
                                rank: .init(group: 2, index: Int.max))
        }
    }

    /// `secrets.webhook_secret_<name>` in the file must name a configured webhook.
    private static func checkWebhookSecretKeys(_ document: YAMLDocument, webhookNames: [String], values: inout ValueReader) {
        for key in document.lines.keys.sorted() where key.hasPrefix(KeyCatalogue.webhookSecretPrefix) {
            let name = String(key.dropFirst(KeyCatalogue.webhookSecretPrefix.count))
            if !webhookNames.contains(name) {
                values.report(key, "no webhook in alerts.webhooks is named \"\(name)\"", origin: .file)
            }
        }
    }
}
