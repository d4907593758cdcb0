import Testing
@testable import TTTConfig

/// Every key of the catalogue, set to a value other than its default.
let everyKeyYAML = """
    database:
      url: postgresql://alice@db.example.org:5433/watch
    control:
      socket: /tmp/tttd-test/control.sock
      admin_group: mods
      viewer_group: watchers
    tiktok:
      web_url: http://127.0.0.1:8089
      webcast_url: http://127.0.0.1:8089/webcast
      requests_per_second: 2.5
      concurrency: 8
      proxies: [http://p1:3128, "http://user:pw@p2:3128"]
    detection:
      interval: 90s
      offline_confirmations: 3
      live_recheck: 10s
      lease: 45s
    transcription:
      enabled: false
      base_url: http://127.0.0.1:8090/v1
      model: base
      language: en
      window: 20s
      max_pipelines: 7
      give_up_after: 2m
    analysis:
      enabled: false
      base_url: http://127.0.0.1:9000/v1
      model: llama
      temperature: 0.5
      requests_per_minute: 12
      prompt: /srv/prompt.yaml
      risk_threshold: 0.4
      always_alert: [insult]
      score_weights:
        base: 0.1
        medium: 0.2
        high: 0.6
        hateful: 0.5
    alerts:
      cooldown: 10m
      email:
        smtp_url: smtp://alerts@mail.example.org:587
        from: tttd@example.org
        to: [a@example.org, b@example.org]
        events: [alert, live_started]
      webhooks:
        - name: ops
          url: https://hooks.example.org/a
          secret: whsec_file_ops
          events: [alert, pipeline_failed]
        - name: chat
          url: https://hooks.example.org/b
    evidence:
      directory: /srv/evidence
    metrics:
      listen: 127.0.0.1:9464
    retention:
      transcripts: 90d
      analyses: 30d
      evidence: 1h30m
      events: forever
    log:
      level: warning
    secrets:
      database_password: file-db
      groq_api_key: file-groq
      transcription_api_key: file-asr
      analysis_api_key: file-llm
      smtp_password: file-smtp
      tiktok_session: file-session
      webhook_secret_chat: file-chat

    """

/// Every key of the catalogue overridden, with values other than the file's and the defaults'.
let everyKeyEnvironment: [String: String] = [
    "TTTD_CONFIG": "/ignored/by/the/loader.yaml",
    "TTTD_DATABASE_URL": "postgresql://bob@/other?host=/run/pg&port=5434",
    "TTTD_CONTROL_SOCKET": "/run/other.sock",
    "TTTD_CONTROL_ADMIN_GROUP": "admins",
    "TTTD_CONTROL_VIEWER_GROUP": "viewers",
    "TTTD_TIKTOK_WEB_URL": "https://w.example.org",
    "TTTD_TIKTOK_WEBCAST_URL": "https://wc.example.org",
    "TTTD_TIKTOK_REQUESTS_PER_SECOND": "0.5",
    "TTTD_TIKTOK_CONCURRENCY": "2",
    "TTTD_TIKTOK_PROXIES": "http://p3:3128, https://p4:3129",
    "TTTD_DETECTION_INTERVAL": "2m",
    "TTTD_DETECTION_OFFLINE_CONFIRMATIONS": "4",
    "TTTD_DETECTION_LIVE_RECHECK": "5s",
    "TTTD_DETECTION_LEASE": "30s",
    "TTTD_TRANSCRIPTION_ENABLED": "true",
    "TTTD_TRANSCRIPTION_BASE_URL": "https://asr.example.org/v1",
    "TTTD_TRANSCRIPTION_MODEL": "large",
    "TTTD_TRANSCRIPTION_LANGUAGE": "mos",
    "TTTD_TRANSCRIPTION_WINDOW": "500ms",
    "TTTD_TRANSCRIPTION_MAX_PIPELINES": "3",
    "TTTD_TRANSCRIPTION_GIVE_UP_AFTER": "90s",
    "TTTD_ANALYSIS_ENABLED": "yes",
    "TTTD_ANALYSIS_BASE_URL": "https://llm.example.org/v1",
    "TTTD_ANALYSIS_MODEL": "gpt",
    "TTTD_ANALYSIS_TEMPERATURE": "1.5",
    "TTTD_ANALYSIS_REQUESTS_PER_MINUTE": "60",
    "TTTD_ANALYSIS_PROMPT": "/p.yaml",
    "TTTD_ANALYSIS_RISK_THRESHOLD": "1",
    "TTTD_ANALYSIS_ALWAYS_ALERT": "insult,stigmatization",
    "TTTD_ANALYSIS_SCORE_WEIGHTS_BASE": "0",
    "TTTD_ANALYSIS_SCORE_WEIGHTS_MEDIUM": "0.25",
    "TTTD_ANALYSIS_SCORE_WEIGHTS_HIGH": "0.45",
    "TTTD_ANALYSIS_SCORE_WEIGHTS_HATEFUL": "0.75",
    "TTTD_ALERTS_COOLDOWN": "1h",
    "TTTD_ALERTS_EMAIL_SMTP_URL": "smtps://x@mail2.example.org:465",
    "TTTD_ALERTS_EMAIL_FROM": "f@example.org",
    "TTTD_ALERTS_EMAIL_TO": "c@example.org",
    "TTTD_ALERTS_EMAIL_EVENTS": "live_ended",
    "TTTD_ALERTS_WEBHOOKS": #"[{name: env-hook, url: "https://env.example.org/h", secret: whsec_env_inline, events: [live_started]}]"#,
    "TTTD_EVIDENCE_DIRECTORY": "/e",
    "TTTD_METRICS_LISTEN": "[::1]:9100",
    "TTTD_RETENTION_TRANSCRIPTS": "forever",
    "TTTD_RETENTION_ANALYSES": "1d",
    "TTTD_RETENTION_EVIDENCE": "12h",
    "TTTD_RETENTION_EVENTS": "7d",
    "TTTD_LOG_LEVEL": "trace",
    "TTTD_SECRETS_DATABASE_PASSWORD": "env-db",
    "TTTD_SECRETS_GROQ_API_KEY": "env-groq",
    "TTTD_SECRETS_TRANSCRIPTION_API_KEY": "env-asr",
    "TTTD_SECRETS_ANALYSIS_API_KEY": "env-llm",
    "TTTD_SECRETS_SMTP_PASSWORD": "env-smtp",
    "TTTD_SECRETS_TIKTOK_SESSION": "env-session",
    "TTTD_SECRETS_WEBHOOK_SECRET_ENV_HOOK": "whsec_env",
]

@Suite struct LoadTests {
    @Test func everyKeyFromTheFile() async throws {
        let (_, result) = try await load(everyKeyYAML)
        let config = try result.get()
        let expected = TTTConfiguration(
            database: .init(url: DatabaseURL(user: "alice", host: "db.example.org", port: 5433, database: "watch")),
            control: .init(socket: "/tmp/tttd-test/control.sock", adminGroup: "mods", viewerGroup: "watchers"),
            tiktok: .init(webURL: "http://127.0.0.1:8089", webcastURL: "http://127.0.0.1:8089/webcast",
                          requestsPerSecond: 2.5, concurrency: 8, proxies: ["http://p1:3128", "http://user:pw@p2:3128"]),
            detection: .init(interval: .seconds(90), offlineConfirmations: 3, liveRecheck: .seconds(10), lease: .seconds(45)),
            transcription: .init(enabled: false, baseURL: "http://127.0.0.1:8090/v1", model: "base", language: "en",
                                 window: .seconds(20), maxPipelines: 7, giveUpAfter: .seconds(120)),
            analysis: .init(enabled: false, baseURL: "http://127.0.0.1:9000/v1", model: "llama", temperature: 0.5,
                            requestsPerMinute: 12, prompt: "/srv/prompt.yaml", riskThreshold: 0.4, alwaysAlert: ["insult"],
                            scoreWeights: .init(base: 0.1, medium: 0.2, high: 0.6, hateful: 0.5)),
            alerts: .init(
                cooldown: .seconds(600),
                email: .init(smtpURL: "smtp://alerts@mail.example.org:587", from: "tttd@example.org",
                             to: ["a@example.org", "b@example.org"], events: ["alert", "live_started"]),
                webhooks: [
                    .init(name: "ops", url: "https://hooks.example.org/a", secret: "whsec_file_ops",
                          events: ["alert", "pipeline_failed"]),
                    .init(name: "chat", url: "https://hooks.example.org/b", secret: "file-chat", events: ["alert"]),
                ]),
            evidence: .init(directory: "/srv/evidence"),
            metrics: .init(listen: "127.0.0.1:9464"),
            retention: .init(transcripts: .duration(.seconds(90 * 86_400)), analyses: .duration(.seconds(30 * 86_400)),
                             evidence: .duration(.seconds(5_400)), events: .forever),
            log: .init(level: "warning"),
            secrets: .init(databasePassword: "file-db", transcriptionAPIKey: "file-asr", analysisAPIKey: "file-llm",
                           smtpPassword: "file-smtp", tiktokSession: "file-session",
                           webhookSecrets: ["ops": "whsec_file_ops", "chat": "file-chat"]))
        #expect(config == expected)
        #expect(config.metrics.listenAddress?.host == "127.0.0.1")
        #expect(config.metrics.listenAddress?.port == 9464)
    }

    @Test func everyKeyOverriddenByTheEnvironment() async throws {
        let (_, result) = try await load(everyKeyYAML, environment: everyKeyEnvironment)
        let config = try result.get()
        let expected = TTTConfiguration(
            database: .init(url: DatabaseURL(user: "bob", port: 5434, database: "other", socketDirectory: "/run/pg")),
            control: .init(socket: "/run/other.sock", adminGroup: "admins", viewerGroup: "viewers"),
            tiktok: .init(webURL: "https://w.example.org", webcastURL: "https://wc.example.org", requestsPerSecond: 0.5,
                          concurrency: 2, proxies: ["http://p3:3128", "https://p4:3129"]),
            detection: .init(interval: .seconds(120), offlineConfirmations: 4, liveRecheck: .seconds(5), lease: .seconds(30)),
            transcription: .init(enabled: true, baseURL: "https://asr.example.org/v1", model: "large", language: "mos",
                                 window: .milliseconds(500), maxPipelines: 3, giveUpAfter: .seconds(90)),
            analysis: .init(enabled: true, baseURL: "https://llm.example.org/v1", model: "gpt", temperature: 1.5,
                            requestsPerMinute: 60, prompt: "/p.yaml", riskThreshold: 1,
                            alwaysAlert: ["insult", "stigmatization"],
                            scoreWeights: .init(base: 0, medium: 0.25, high: 0.45, hateful: 0.75)),
            alerts: .init(
                cooldown: .seconds(3_600),
                email: .init(smtpURL: "smtps://x@mail2.example.org:465", from: "f@example.org", to: ["c@example.org"],
                             events: ["live_ended"]),
                webhooks: [.init(name: "env-hook", url: "https://env.example.org/h", secret: "whsec_env",
                                 events: ["live_started"])]),
            evidence: .init(directory: "/e"),
            metrics: .init(listen: "[::1]:9100"),
            retention: .init(transcripts: .forever, analyses: .duration(.seconds(86_400)),
                             evidence: .duration(.seconds(43_200)), events: .duration(.seconds(7 * 86_400))),
            log: .init(level: "trace"),
            secrets: .init(databasePassword: "env-db", transcriptionAPIKey: "env-asr", analysisAPIKey: "env-llm",
                           smtpPassword: "env-smtp", tiktokSession: "env-session",
                           webhookSecrets: ["env-hook": "whsec_env"]))
        #expect(config == expected)
        #expect(config.metrics.listenAddress?.host == "::1")
    }

    /// Guards the two tests above: a key added to the catalogue must be added to them too.
    @Test func theTestsAboveCoverEveryKey() throws {
        let parsed = try YAMLDocument.parse(everyKeyYAML).get()
        for key in KeyCatalogue.keys {
            #expect(parsed.lines[key.path] != nil, "\(key.path) is missing from everyKeyYAML")
            #expect(everyKeyEnvironment[KeyCatalogue.environmentName(key.path)] != nil,
                    "\(KeyCatalogue.environmentName(key.path)) is missing from everyKeyEnvironment")
        }
        #expect(parsed.problems.isEmpty)
    }

    @Test func defaultsWhenOnlyTheDatabaseIsGiven() async throws {
        let config = try await load(minimalYAML).result.get()
        let expected = TTTConfiguration(database: .init(url: DatabaseURL(
            user: "tttd", port: 5432, database: "tttd", socketDirectory: "/run/postgresql")))
        #expect(config == expected)
        #expect(config.tiktok.requestsPerSecond == 0.3)
        #expect(config.detection.interval == .seconds(60))
        #expect(config.alerts.cooldown == .seconds(300))
        #expect(config.analysis.alwaysAlert == ["call_to_violence", "dehumanization"])
        #expect(config.retention.events == .forever)
        #expect(config.log.level == "info")
        #expect(config.alerts.email == nil)
        #expect(config.metrics.listen == nil)
    }

    @Test func theDatabaseURLCanComeFromTheEnvironmentAlone() async throws {
        let config = try await load("", environment: ["TTTD_DATABASE_URL": "postgresql://u@h/d"]).result.get()
        #expect(config.database.url == DatabaseURL(user: "u", host: "h", database: "d"))
    }

    @Test func emptyListsAndEmptyOptionalValuesFromTheEnvironment() async throws {
        let yaml = minimalYAML + "tiktok:\n  proxies: [http://p:1]\nmetrics:\n  listen: 127.0.0.1:9\n"
        let config = try await load(yaml, environment: ["TTTD_TIKTOK_PROXIES": "", "TTTD_METRICS_LISTEN": ""]).result.get()
        #expect(config.tiktok.proxies == [])
        #expect(config.metrics.listen == nil)
    }

    @Test func aSingleValueForAListIsCommaSeparated() async throws {
        let yaml = minimalYAML + "analysis:\n  always_alert: insult, dehumanization\n"
        let config = try await load(yaml).result.get()
        #expect(config.analysis.alwaysAlert == ["insult", "dehumanization"])
    }

    @Test func theProductionExampleLoads() async throws {
        let config = try await ConfigLoader.load(path: repositoryRoot + "/etc/tttd/tttd.yaml", environment: [:])
        let expected = TTTConfiguration(database: .init(url: DatabaseURL(
            user: "tttd", port: 5432, database: "tttd", socketDirectory: "/run/postgresql")))
        #expect(config == expected, "the example documents the defaults")
    }

    @Test func theDevelopmentExampleLoads() async throws {
        let config = try await ConfigLoader.load(
            path: repositoryRoot + "/etc/tttd/dev.yaml",
            environment: ["TTTD_DATABASE_URL": "postgresql://tttd@/tttd?host=/work/.run/pg&port=5433"])
        #expect(config.control.socket == ".run/control.sock")
        #expect(config.control.adminGroup == "tttd-admin")
        #expect(config.control.viewerGroup == "tttd")
        #expect(config.transcription.baseURL == "http://127.0.0.1:8090/v1")
        #expect(config.transcription.model == "base")
        #expect(config.analysis.enabled == false)
        #expect(config.evidence.directory == ".run/evidence")
        #expect(config.log.level == "debug")
        #expect(config.database.url.socketPath == "/work/.run/pg/.s.PGSQL.5433")
    }
}
