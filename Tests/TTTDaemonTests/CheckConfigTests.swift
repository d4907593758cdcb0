import Foundation
import TestSupport
import Testing

/// `tttd check-config` and `tttd --version` as processes, with no TTTD_* inherited from the caller.
@Suite("tttd check-config")
struct CheckConfigTests {
    static let validYAML = """
        database:
          url: postgresql://tttd@127.0.0.1:5432/tttd
        control:
          socket: /tmp/ttt-check-config.sock
        detection:
          interval: 30s
        """

    @Test("a valid file exits 0 and says OK")
    func valid() async throws {
        let (file, result) = try await checkConfig(Self.validYAML)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains(file) && result.stdout.contains("OK"), "\(result)")
        #expect(result.stderr.isEmpty, "\(result)")
    }

    @Test("OK names the secrets present, never their values")
    func okNamesSecrets() async throws {
        let (file, result) = try await checkConfig(
            Self.validYAML, environment: ["TTTD_SECRETS_SMTP_PASSWORD": "hunter2-smtp", "TTTD_ANALYSIS_ENABLED": "false"])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.hasPrefix("\(file): OK (database postgresql://tttd@127.0.0.1:5432/tttd, secrets: smtp_password)"),
                "\(result)")
        #expect(!result.stdout.contains("hunter2"), "\(result)")
    }

    @Test("a typo'd key exits 1; stderr names the file and suggests detection.interval")
    func typo() async throws {
        let (file, result) = try await checkConfig(Self.validYAML.replacingOccurrences(of: "  interval: 30s", with: "  intervall: 30s"))
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("\(file): detection.intervall:"), "\(result)")
        #expect(result.stderr.contains("did you mean detection.interval?"), "\(result)")
    }

    @Test("a value that is not a duration: FILE: detection.interval: \"3 parsecs\" is not a duration…, exit 1")
    func notADuration() async throws {
        let (file, result) = try await checkConfig(Self.validYAML.replacingOccurrences(of: "interval: 30s", with: "interval: 3 parsecs"))
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("\(file): detection.interval: \"3 parsecs\" is not a duration"), "\(result)")
        #expect(result.stdout.isEmpty, "\(result)")
    }

    @Test("database.url missing (and no TTTD_DATABASE_URL) names database.url, exit 1; the variable fills it")
    func missingDatabaseURL() async throws {
        let yaml = "detection:\n  interval: 30s\n"
        let (file, result) = try await checkConfig(yaml)
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("\(file): database.url:"), "\(result)")
        let (_, withVariable) = try await checkConfig(yaml, environment: ["TTTD_DATABASE_URL": "postgresql://tttd@/tttd?host=/run/postgresql"])
        #expect(withVariable.status == 0, "\(withVariable)")
    }

    @Test("several problems at once are all printed, one per line")
    func severalProblems() async throws {
        let yaml = """
            detection:
              intervall: 30s
              offline_confirmations: many
            tiktok:
              requests_per_second: fast
            alerts:
              cooldown: 3 parsecs
            log:
              level: loud
            """
        let (file, result) = try await checkConfig(yaml)
        #expect(result.status == 1, "\(result)")
        let lines = result.stderr.split(separator: "\n").map(String.init)
        for key in ["database.url", "detection.intervall", "detection.offline_confirmations", "tiktok.requests_per_second",
                    "alerts.cooldown", "log.level"] {
            #expect(lines.contains { $0.hasPrefix("\(file): \(key):") }, "no line for \(key) in:\n\(result.stderr)")
        }
        #expect(lines.count >= 6, "\(result)")
    }

    @Test("TTTD_DETECTION_INTERVAL=3parsecs exits 1 naming the variable")
    func badVariable() async throws {
        let (_, result) = try await checkConfig(Self.validYAML, environment: ["TTTD_DETECTION_INTERVAL": "3parsecs"])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("TTTD_DETECTION_INTERVAL"), "\(result)")
        #expect(result.stderr.contains("\"3parsecs\" is not a duration"), "\(result)")
        // A good value from the environment wins over the file's bad one.
        let (_, fixed) = try await checkConfig(Self.validYAML.replacingOccurrences(of: "interval: 30s", with: "interval: 3 parsecs"),
                                               environment: ["TTTD_DETECTION_INTERVAL": "45s"])
        #expect(fixed.status == 0, "\(fixed)")
    }

    @Test("a TTTD_ variable that is no key is reported with the nearest name")
    func unknownVariable() async throws {
        let (_, result) = try await checkConfig(Self.validYAML, environment: ["TTTD_DETECTION_INTERVALL": "30s"])
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains("TTTD_DETECTION_INTERVALL"), "\(result)")
        #expect(result.stderr.contains("TTTD_DETECTION_INTERVAL?") || result.stderr.contains("TTTD_DETECTION_INTERVAL)"), "\(result)")
    }

    @Test("a file that cannot be read, or is not YAML, is named; exit 1")
    func unreadable() async throws {
        let missing = try await runCommand(TestEnvironment.tttd, ["check-config", "--config", "/nonexistent/tttd.yaml"],
                                           environment: cleanEnvironment())
        #expect(missing.status == 1, "\(missing)")
        #expect(missing.stderr.contains("/nonexistent/tttd.yaml"), "\(missing)")
        let (file, broken) = try await checkConfig("database:\n  url: [unclosed\n")
        #expect(broken.status == 1, "\(broken)")
        #expect(broken.stderr.contains(file), "\(broken)")
    }

    @Test("the shipped example etc/tttd/tttd.yaml and dev.yaml (with TTTD_DATABASE_URL) are valid")
    func shippedExamples() async throws {
        for name in ["tttd.yaml", "dev.yaml"] {
            let path = TestEnvironment.repoRoot.appendingPathComponent("etc/tttd/\(name)").path
            var environment = cleanEnvironment()
            environment["TTTD_DATABASE_URL"] = "postgresql://tttd@/tttd?host=/run/postgresql"
            let result = try await runCommand(TestEnvironment.tttd, ["check-config", "--config", path], environment: environment)
            #expect(result.status == 0, "\(name): \(result)")
        }
    }

    @Test("the prompt template is checked even while analysis is off: a broken one exits 1 naming analysis.prompt; a missing one is a note")
    func promptCheckedWhileAnalysisIsOff() async throws {
        let directory = try TemporaryDirectory()
        let prompt = directory.file("moderation.yaml")
        try "system: [unclosed\n".write(toFile: prompt, atomically: true, encoding: .utf8)
        // No analysis key for the default cloud endpoint: analysis is off.
        let (file, broken) = try await checkConfig(Self.validYAML + "\nanalysis:\n  prompt: \(prompt)\n")
        #expect(broken.status == 1, "\(broken)")
        #expect(broken.stderr.contains("\(file): analysis.prompt:"), "\(broken)")

        let missing = directory.file("absent.yaml")
        let (_, absent) = try await checkConfig(Self.validYAML + "\nanalysis:\n  prompt: \(missing)\n")
        #expect(absent.status == 0, "\(absent)")
        #expect(absent.stdout.contains("note: analysis.prompt: \(missing) does not exist"), "\(absent)")
    }

    @Test("tttd --version prints the version the running daemon reports")
    func version() async throws {
        let result = try await runCommand(TestEnvironment.tttd, ["--version"], environment: cleanEnvironment())
        #expect(result.status == 0, "\(result)")
        let printed = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(printed.range(of: #"^\d+\.\d+\.\d+"#, options: .regularExpression) != nil, "\(result)")

        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database)
        try await daemon.start()
        let status = try await daemon.ctl(["status", "--json"])
        #expect((try status.json() as? [String: Any])?["version"] as? String == printed, "\(status)")
        #expect(try await daemon.stop() == 0)
    }

    // MARK: Helpers

    /// The caller's environment without any TTTD_* (nor a credentials directory), plus `extra`.
    private func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("TTTD_") && $0.key != "CREDENTIALS_DIRECTORY" && $0.key != "NOTIFY_SOCKET"
        }
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// Writes `yaml` to a fresh file and runs `tttd check-config --config FILE` on it.
    private func checkConfig(_ yaml: String, environment: [String: String] = [:]) async throws -> (String, CommandResult) {
        let directory = try TemporaryDirectory()
        let file = directory.file("tttd.yaml")
        try yaml.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try await runCommand(TestEnvironment.tttd, ["check-config", "--config", file],
                                          environment: cleanEnvironment(environment))
        return (file, result)
    }
}
