import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Secrets never leave tttd: every secret gets a recognisable random value, every failure path
/// that logs is made to happen (the ASR and the model answer 401 quoting the key they were given,
/// the SMTP server refuses the login, the webhook receiver refuses the signature, TikTok fails a
/// request that carries the session cookie, PostgreSQL refuses the password), and none of the
/// values, nor their start or end alone, nor the encodings a protocol gives them, turns up in what
/// tttd shows: its stderr (at trace level), its systemd status, its argv and its ffmpeg children's
/// argv and environment, tttctl's answers and events, the database, `tttd check-config`.
@Suite("secrets never leak", .serialized)
struct SecretsLeakTests {
    // MARK: Every failure path of a running tttd

    @Test("every secret set, every failure path taken: no value in stderr, status, argv, ffmpeg's environment, tttctl, events, alerts or the database")
    func everyFailurePath() async throws {
        let secrets = RecognisableSecrets()
        let postgres = try await PasswordCluster.start(password: secrets.databasePassword.value)

        // Each endpoint expects another credential than the one tttd has.
        let sim = SimProcess()
        try await sim.start()
        _ = try await sim.request("POST", "/_sim/accounts", json: #"{"username": "vip", "restricted": true}"#)
        // Nothing upstream: every transcription request is refused before it would be forwarded.
        let asr = try await FaultProxy.start(upstream: "http://127.0.0.1:9", apiKey: RecognisableSecrets.make("sk-asr-expected"))
        let chat = try await ChatServer.start(apiKey: RecognisableSecrets.make("sk-llm-expected"))
        let sink = try await SMTPSinkProcess(["--auth-user", "tttd"],
                                             environment: ["SMTP_SINK_PASSWORD": RecognisableSecrets.make("smtp-expected")])
        let receiver = try await WebhookReceiver.start()

        // The production way (a credentials directory) for most, TTTD_SECRETS_* for the others.
        let credentials = try TemporaryDirectory()
        for secret in [secrets.databasePassword, secrets.transcriptionKey, secrets.analysisKey, secrets.tiktokSession] {
            try (secret.value + "\n").write(toFile: credentials.file(secret.name), atomically: true, encoding: .utf8)
        }
        let environment = [
            "CREDENTIALS_DIRECTORY": credentials.path,
            "TTTD_SECRETS_SMTP_PASSWORD": secrets.smtpPassword.value,
            "TTTD_SECRETS_WEBHOOK_SECRET_OPS": secrets.webhookSecret.value,
            "TTTD_LOG_LEVEL": "trace",
        ]
        let config = """
            tiktok:
              web_url: "\(sim.baseURL)"
              webcast_url: "\(sim.baseURL)"
              requests_per_second: 4
              concurrency: 2
            detection:
              interval: 1s
              offline_confirmations: 2
              live_recheck: 1s
              lease: 5s
            transcription:
              enabled: true
              base_url: "\(asr.baseURL)/v1"
              model: whisper-large-v3-turbo
              language: en
              window: 4s
            analysis:
              base_url: "\(chat.baseURL)"
              model: test-model
              prompt: "\(ModerationRig.promptPath)"
              requests_per_minute: 600
            alerts:
              email:
                smtp_url: "smtp://tttd@127.0.0.1:\(sink.port)?tls=none"
                from: "tttd@moderation.example"
                to: ["moderateurs@moderation.example"]
                events: [live_started]
              webhooks:
                - name: ops
                  url: "\(receiver.url)"
                  events: [live_started]
            """
        let daemon = try DaemonProcess(database: TestDatabase(name: "app", url: postgres.url()), extraConfig: config,
                                       environment: environment)
        var outputs = [Haystack]()

        let checked = try await checkConfig(daemon.configPath, environment: environment)
        #expect(checked.status == 0, "\(checked)")
        for name in ["database_password", "transcription_api_key", "analysis_api_key", "smtp_password", "tiktok_session",
                     "webhook_secret_ops"] {
            #expect(checked.stdout.contains(name), "check-config does not name the secret \(name): \(checked)")
        }
        outputs.append(Haystack("tttd check-config", checked.stdout + checked.stderr))

        // READY: the pool logged in with the password (PostgreSQL asks tttd_app for it).
        try await daemon.start()
        let follow = try await EventFollower(daemon: daemon)

        // TikTok: the first room info, which carries the session cookie, fails; then the
        // age-restricted live is only captured because the cookie is sent.
        try await sim.fault(#"{"kind": "http_status", "status": 403, "paths": ["/webcast/room/info/"], "max": 1}"#)
        let added = try await daemon.ctl(["accounts", "add", "vip"])
        #expect(added.status == 0, "\(added)")
        _ = try await sim.goLive("vip", audio: try await TestAudio.speech())
        let started = try await follow.wait("live_started of vip") {
            $0["type"] as? String == "live_started" && $0["username"] as? String == "vip"
        }
        let liveID = try #require(started.event["live_id"] as? Int)
        try await follow.waitForState("capturing", liveID: liveID, timeout: 90)
        #expect(try await sim.requests(to: "/webcast/room/info/") >= 2, "the failing room info was not retried")

        // ffmpeg's argv holds tttsim's signed stream URL, and neither it nor its environment a secret.
        var ffmpeg = [ProcInfo]()
        try await eventually("an ffmpeg child of tttd", timeout: 30) {
            ffmpeg = Proc.children(of: daemon.pid, named: "ffmpeg")
            return !ffmpeg.isEmpty
        }
        for child in ffmpeg {
            let argv = Self.procFile(child.pid, "cmdline")
            #expect(argv.contains(sim.baseURL), "ffmpeg \(child.pid) does not read tttsim's stream: \(argv)")
            outputs.append(Haystack("ffmpeg \(child.pid) argv", argv))
            outputs.append(Haystack("ffmpeg \(child.pid) environment", Self.procFile(child.pid, "environ")))
        }
        outputs.append(Haystack("tttd argv", Self.procFile(daemon.pid, "cmdline")))

        // The model: windows of an ended live wait for the analyzer, which is refused.
        let judged = try await postgres.admin.psql("""
            INSERT INTO lives (username, room_id, title, started_at, ended_at, status, end_reason)
            VALUES ('awa.kabore', '7312345678901234567', 'Débat', now() - interval '10 minutes', now(), 'ended', 'test')
            RETURNING id
            """)
        _ = try await postgres.admin.psql("""
            INSERT INTO transcripts (live_id, seq, start_s, end_s, text, language, analysis_state)
            VALUES (\(judged), 0, 0, 15, 'Tuez-les tous, ces gens-là.', 'fr', 'pending')
            """)

        // Each failure happened and was logged, with the key the server quoted taken out.
        try await eventually("the ASR's 401 in tttd's log", timeout: 90) {
            daemon.log.contains("ASR request failed; retrying") && daemon.log.contains("HTTP 401: Incorrect API key provided: [redacted]")
        }
        #expect(((try await asr.stats())["by_kind"] as? [String: Any])?["unauthorized"] as? Int ?? 0 >= 1)
        try await eventually("the model's 401 in tttd's log", timeout: 60) {
            daemon.log.contains("analysis: the model is unavailable") && daemon.log.contains("HTTP 401: Incorrect API key provided: [redacted]")
        }
        #expect(try await chat.requests().contains { string($0["answer"]) == "unauthorized" })
        var deliveryErrors = [String: String]()
        try await eventually("both live_started deliveries failed", timeout: 60) {
            let rows = try await postgres.admin.psql("SELECT channel || '|' || coalesce(last_error, '') FROM deliveries")
            deliveryErrors = Dictionary(rows.split(separator: "\n").map { line in
                let parts = line.split(separator: "|", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
                return (parts[0], parts.count > 1 ? parts[1] : "")
            }, uniquingKeysWith: { $1 })
            return deliveryErrors.count == 2 && deliveryErrors.values.allSatisfy { !$0.isEmpty }
        }
        #expect(sink.log.contains("refused"), "the SMTP server did not refuse a login: \(sink.log)")
        #expect(try sink.messages().isEmpty, "a message went through without the right password")
        #expect(deliveryErrors["webhook:ops"]?.contains("401") == true, "\(deliveryErrors)")
        #expect(try await receiver.deliveries().contains { $0["signature_ok"] as? Bool == false && $0["status"] as? Int == 401 },
                "the receiver saw no request with a wrong signature")

        for arguments in [["status", "--json"], ["accounts", "list", "--json"], ["lives", "--json"],
                          ["live", "show", String(liveID), "--json"], ["live", "show", judged, "--json"],
                          ["pipelines", "--json"], ["alerts", "--json"]] {
            let result = try await daemon.ctl(arguments)
            #expect(result.status == 0, "tttctl \(arguments): \(result)")
            outputs.append(Haystack("tttctl \(arguments.joined(separator: " "))", result.stdout + result.stderr))
        }
        #expect(try await daemon.stop() == 0, "\(daemon.log)")
        outputs.append(Haystack("tttctl follow --all", Self.json(follow.events)))
        outputs.append(Haystack("tttd stderr", daemon.log))
        outputs.append(Haystack("systemd notifications", daemon.notify.messages.joined(separator: "\n")))
        outputs.append(Haystack("the database (events, alerts, deliveries, pipelines, …)", try await postgres.dump()))

        let found = leaks(of: secrets.needles(smtpUser: "tttd"), in: outputs)
        let none = found.isEmpty
        #expect(none, "secrets leaked:\n\(found.joined(separator: "\n"))")
    }

    // MARK: A wrong database password

    @Test("a wrong database password, as a credential or in the URL: tttd waits saying the password was refused, never showing it; nor does check-config")
    func wrongDatabasePassword() async throws {
        let right = RecognisableSecrets.make("dbpass")
        let wrongCredential = RecognisableSecrets.make("dbwrong")
        let wrongInURL = RecognisableSecrets.make("dburl")
        let postgres = try await PasswordCluster.start(password: right)
        let credentials = try TemporaryDirectory()
        try (wrongCredential + "\n").write(toFile: credentials.file("database_password"), atomically: true, encoding: .utf8)

        let cases: [(what: String, url: String, environment: [String: String])] = [
            ("the database_password credential", postgres.url(), ["CREDENTIALS_DIRECTORY": credentials.path, "TTTD_LOG_LEVEL": "trace"]),
            ("a password in database.url", postgres.url(password: wrongInURL), ["TTTD_LOG_LEVEL": "trace"]),
        ]
        for (what, url, environment) in cases {
            let daemon = try DaemonProcess(database: TestDatabase(name: "app", url: url), environment: environment)
            var outputs = [Haystack]()
            let checked = try await checkConfig(daemon.configPath, environment: environment)
            #expect(checked.status == 0, "\(what): \(checked)")
            #expect(checked.stdout.contains("postgresql://tttd_app\(url.contains(wrongInURL) ? ":***" : "")@127.0.0.1"),
                    "\(what): \(checked)")
            outputs.append(Haystack("tttd check-config", checked.stdout + checked.stderr))

            try await daemon.start(waitForReady: false)
            let first = try await daemon.notify.waitForPrefix("STATUS=waiting for the database", timeout: 60)
            #expect(first.contains(#"password authentication failed for user "tttd_app""#), "\(what): \(first)\n\(daemon.log)")
            // It keeps trying (the password may be corrected on the server's side), and stays not ready.
            _ = try await daemon.notify.waitForLine(timeout: 60) {
                $0.hasPrefix("STATUS=waiting for the database") && $0.contains("retry 2")
            }
            #expect(daemon.process.isRunning, "\(what): tttd exited:\n\(daemon.log)")
            outputs.append(Haystack("tttd argv", Self.procFile(daemon.pid, "cmdline")))
            #expect(try await daemon.stop() == 0, "\(what): \(daemon.log)")
            #expect(!daemon.notify.messages.joined(separator: "\n").contains("READY=1"), "\(what): ready with a wrong password")
            #expect(daemon.log.contains("password authentication failed"), "\(what): \(daemon.log)")
            outputs.append(Haystack("tttd stderr", daemon.log))
            outputs.append(Haystack("systemd notifications", daemon.notify.messages.joined(separator: "\n")))

            let needles = [right, wrongCredential, wrongInURL].flatMap { RecognisableSecrets.needles(name: "database password", value: $0) }
            let found = leaks(of: needles, in: outputs)
            let none = found.isEmpty
            #expect(none, "\(what): the password leaked:\n\(found.joined(separator: "\n"))")
        }
    }

    @Test("a password changed on the server under a running tttd: the log and status give the server's reason, not a timeout; back when it is restored; the password never shown")
    func passwordChangedWhileRunning() async throws {
        let right = RecognisableSecrets.make("dbpass")
        let changed = RecognisableSecrets.make("dbchanged")
        let postgres = try await PasswordCluster.start(password: right)
        let credentials = try TemporaryDirectory()
        try (right + "\n").write(toFile: credentials.file("database_password"), atomically: true, encoding: .utf8)
        let environment = ["CREDENTIALS_DIRECTORY": credentials.path, "TTTD_LOG_LEVEL": "trace"]
        let daemon = try DaemonProcess(database: TestDatabase(name: "app", url: postgres.url()), environment: environment)
        try await daemon.start()

        let admin = postgres.cluster.database
        _ = try await admin.psql("ALTER ROLE tttd_app PASSWORD \(sqlLiteral(changed))")
        _ = try await admin.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'tttd_app'")
        try await daemon.waitForLog("the refused login") { log in
            log.split(separator: "\n").contains { $0.contains("database unavailable reason=unavailable: password authentication failed") }
        }
        let status = try await daemon.ctl(["status", "--json"])
        let state = (try? status.json() as? [String: Any])?["database"] as? String ?? ""
        #expect(state.contains(#"password authentication failed for user "tttd_app""#), "\(status)")

        _ = try await admin.psql("ALTER ROLE tttd_app PASSWORD \(sqlLiteral(right))")
        try await daemon.waitForLog("the database back", timeout: 120) { $0.contains("database reachable again") }
        #expect(try await daemon.stop() == 0)

        let needles = [right, changed].flatMap { RecognisableSecrets.needles(name: "database password", value: $0) }
        let found = leaks(of: needles, in: [Haystack("tttd stderr", daemon.log), Haystack("tttctl status", status.stdout),
                                           Haystack("systemd notifications", daemon.notify.messages.joined(separator: "\n"))])
        let none = found.isEmpty
        #expect(none, "the password leaked:\n\(found.joined(separator: "\n"))")
    }

    // MARK: Helpers

    /// `tttd check-config` with these variables (and no TTTD_* of the caller's).
    func checkConfig(_ path: String, environment: [String: String]) async throws -> CommandResult {
        var variables = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("TTTD_") && $0.key != "CREDENTIALS_DIRECTORY" }
        variables.merge(environment) { $1 }
        return try await runCommand(TestEnvironment.tttd, ["check-config", "--config", path], environment: variables)
    }

    /// /proc/PID/FILE with its NUL separators as spaces ("" when the process is gone).
    static func procFile(_ pid: Int32, _ file: String) -> String {
        guard let handle = FileHandle(forReadingAtPath: "/proc/\(pid)/\(file)") else { return "" }
        defer { try? handle.close() }
        return String(decoding: handle.readDataToEndOfFile().map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
    }

    /// Without escaped slashes: a base64 secret must be found as written.
    static func json(_ value: Any) -> String {
        let data = try? JSONSerialization.data(withJSONObject: value, options: [.withoutEscapingSlashes])
        return data.map { String(decoding: $0, as: UTF8.self) } ?? ""
    }
}

/// What tttd showed somewhere, and where.
struct Haystack {
    var place: String
    var text: String
    init(_ place: String, _ text: String) {
        self.place = place
        self.text = text
    }
}

/// Each needle found in a haystack, with a little of the text around it.
func leaks(of needles: [(name: String, text: String)], in haystacks: [Haystack]) -> [String] {
    var found = [String]()
    for haystack in haystacks {
        let bytes = Data(haystack.text.utf8)
        for needle in needles {
            guard let range = bytes.range(of: Data(needle.text.utf8)) else { continue }
            let around = bytes[max(bytes.startIndex, range.lowerBound - 120)..<min(bytes.endIndex, range.upperBound + 120)]
            found.append("\(needle.name) (\(needle.text)) in \(haystack.place): …\(String(decoding: around, as: UTF8.self))…")
        }
    }
    return found
}

/// Secret values no output could hold by chance: a kind and 32 random hex digits, the webhook
/// secret `whsec_` and the base64 of 24 random bytes.
struct RecognisableSecrets {
    struct Secret {
        /// As the credential file is named.
        var name: String
        var value: String
    }

    let databasePassword = Secret(name: "database_password", value: make("dbpass"))
    let transcriptionKey = Secret(name: "transcription_api_key", value: make("sk-asr"))
    let analysisKey = Secret(name: "analysis_api_key", value: make("sk-llm"))
    let smtpPassword = Secret(name: "smtp_password", value: make("smtp"))
    /// A bare `sessionid` value (tttd makes it the cookies TikTok expects).
    let tiktokSession = Secret(name: "tiktok_session", value: make("sess"))
    let webhookSecret = Secret(name: "webhook_secret_ops",
                               value: "whsec_" + Data((0..<24).map { _ in UInt8.random(in: 0...255) }).base64EncodedString())

    static func make(_ kind: String) -> String {
        kind + "-" + (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// The value, and the first and last 12 characters of its random part: a value cut short
    /// (a reason truncated to N characters before the key was taken out) leaks too.
    static func needles(name: String, value: String) -> [(name: String, text: String)] {
        let random = value.split(separator: "-").last.map(String.init) ?? value
        return [(name, value), (name + ", its start", String(random.prefix(12))), (name + ", its end", String(random.suffix(12)))]
    }

    /// Every secret's needles, plus what SMTP AUTH sends (base64 of the PLAIN and LOGIN forms)
    /// and the webhook secret's base64 key alone.
    func needles(smtpUser: String) -> [(name: String, text: String)] {
        var needles = [databasePassword, transcriptionKey, analysisKey, smtpPassword, tiktokSession].flatMap {
            Self.needles(name: $0.name, value: $0.value)
        }
        let key = String(webhookSecret.value.dropFirst("whsec_".count))
        needles += [(webhookSecret.name, webhookSecret.value), (webhookSecret.name + ", its key", key),
                    (webhookSecret.name + ", its start", String(key.prefix(12))),
                    (webhookSecret.name + ", its end", String(key.suffix(12)))]
        needles += [("smtp_password as AUTH PLAIN", Data("\0\(smtpUser)\0\(smtpPassword.value)".utf8).base64EncodedString()),
                    ("smtp_password as AUTH LOGIN", Data(smtpPassword.value.utf8).base64EncodedString())]
        return needles
    }
}

/// A private cluster (scripts/pg-private) where the role tttd_app must give its password (SCRAM)
/// over TCP, to its database `app`; every other connection is trusted.
struct PasswordCluster {
    let cluster: PrivateCluster

    static func start(password: String) async throws -> PasswordCluster {
        let cluster = try await PrivateCluster.start()
        let admin = cluster.database
        _ = try await admin.psql("CREATE ROLE tttd_app LOGIN PASSWORD \(sqlLiteral(password))")
        _ = try await admin.psql("CREATE DATABASE app OWNER tttd_app")
        // The server writes its own pg_hba.conf (as the user it runs as); a restart reads it.
        let hba = try await admin.psql("SHOW hba_file")
        _ = try await admin.psql("""
            COPY (VALUES ('local all all trust'), ('host all tttd_app 127.0.0.1/32 scram-sha-256'),
                         ('host all all 127.0.0.1/32 trust')) TO \(sqlLiteral(hba))
            """)
        try await cluster.restart()
        let postgres = PasswordCluster(cluster: cluster)
        // Without its password tttd_app is refused: a test that logs in really used it.
        let refused = try await runCommand("/usr/bin/psql", [postgres.url(), "-X", "-w", "-c", "SELECT 1"])
        guard refused.status != 0, refused.stderr.contains("password") else {
            throw HarnessError("tttd_app logs in without a password: \(refused)")
        }
        return postgres
    }

    /// tttd's URL: TCP, with `password` in it when given.
    func url(password: String? = nil) -> String {
        "postgresql://tttd_app\(password.map { ":" + $0 } ?? "")@127.0.0.1:\(cluster.port)/app"
    }

    /// The database `app` as the superuser sees it.
    var admin: TestDatabase { TestDatabase(name: "app", url: TestDatabase.replacingDatabase(in: cluster.url, with: "app")) }

    /// Every row of `app` as SQL (pg_dump --data-only).
    func dump() async throws -> String {
        let result = try await runCommand("\(TestEnvironment.pgBin)/pg_dump", ["--data-only", "--column-inserts", admin.url])
        guard result.status == 0 else { throw HarnessError("pg_dump app: \(result)") }
        return result.stdout
    }
}
