import Testing
@testable import TTTConfig

@Suite struct ProblemTests {
    @Test func aTypoedKeyIsReportedWithTheNearestKey() async throws {
        let (path, found) = try await problems(minimalYAML + "detection:\n  intervall: 30s\n")
        #expect(found == [ConfigProblem(source: path, key: "detection.intervall",
                                        message: "unknown key (did you mean detection.interval?)")])
        #expect(found.first?.description == "\(path): detection.intervall: unknown key (did you mean detection.interval?)")
    }

    @Test func unknownKeysAnywhere() async throws {
        let yaml = minimalYAML + """
            detecton:
              interval: 30s
            tiktok:
              interval: 30s
            alerts:
              email:
                smtp: smtp://x@y
              webhooks:
                - name: ops
                  urll: https://example.org
            zzzzzzzz: 1

            """
        let (path, found) = try await problems(yaml)
        #expect(found.map(\.description) == [
            "\(path): detecton: unknown key (did you mean detection?)",
            "\(path): tiktok.interval: unknown key (did you mean detection.interval?)",
            "\(path): alerts.email.smtp: unknown key (did you mean alerts.email.smtp_url?)",
            "\(path): alerts.webhooks[0].urll: unknown key (did you mean alerts.webhooks[0].url?)",
            "\(path): alerts.webhooks[0].url: is required",
            "\(path): zzzzzzzz: unknown key",
        ])
    }

    @Test func aBadDurationSaysWhatADurationIs() async throws {
        let (path, found) = try await problems(minimalYAML + "detection:\n  interval: 3 parsecs\n")
        #expect(found.map(\.description) == [
            "\(path): detection.interval: \"3 parsecs\" is not a duration (use 500ms, 30s, 2m, 1h, 90d)",
        ])
    }

    @Test func theDatabaseURLIsRequired() async throws {
        let (path, found) = try await problems("log:\n  level: info\n")
        #expect(found.map(\.description) == [
            "\(path): database.url: is required (set it in the file or with TTTD_DATABASE_URL)",
        ])
    }

    @Test func anEmptyFileNeedsOnlyTheDatabaseURL() async throws {
        let (path, found) = try await problems("")
        #expect(found == [ConfigProblem(source: path, key: "database.url",
                                        message: "is required (set it in the file or with TTTD_DATABASE_URL)")])
    }

    @Test func aMissingFileIsOneProblem() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/absent.yaml"
        do {
            _ = try await ConfigLoader.load(path: path, environment: [:])
            Issue.record("loaded a missing file")
        } catch {
            #expect(error.problems.map(\.description) == ["\(path): cannot read the file: No such file or directory"])
        }
    }

    @Test func aYAMLSyntaxErrorNamesTheLine() async throws {
        let (path, found) = try await problems(minimalYAML + "detection:\n  interval: [30s\n")
        #expect(found.count == 1)
        #expect(found.first?.source == path)
        #expect(found.first?.message.hasPrefix("YAML syntax error at line") == true)
        #expect(found.first?.message.contains("line 4") == true || found.first?.message.contains("line 5") == true)
    }

    @Test func aDuplicateKeyIsAnError() async throws {
        let (_, found) = try await problems(minimalYAML + "log:\n  level: info\n  level: debug\n")
        #expect(found.count == 1)
        #expect(found.first?.message.contains("duplicate key level") == true)
    }

    @Test func severalProblemsAreReportedTogetherInOrder() async throws {
        let yaml = """
            database:
              url: mysql://tttd@db/tttd
            control:
              admin_group: ""
            tiktok:
              web_url: not a url
              requests_per_second: 0
              concurrency: 0
              proxies: [ftp://p:21]
            detection:
              interval: 0s
              offline_confirmations: two
            transcription:
              enabled: maybe
              language: French
              max_pipelines: 0
            analysis:
              temperature: 3
              risk_threshold: 1.5
              requests_per_minute: -1
              always_alert: [insult, sarcasm]
            alerts:
              cooldown: soon
              email:
                smtp_url: smtp://alerts@mail.example.org
                to: [not-an-address]
                events: [alert, everything]
              webhooks:
                - name: ops
                  url: https://example.org/1
                - name: ops
                  url: https://example.org/2
                  events: [nope]
                - url: https://example.org/3
                - name: x
            metrics:
              listen: localhost
            retention:
              transcripts: 90 days
            log:
              level: verbose

            """
        let environment = [
            "TTTD_DETECTION_INTERVALL": "30s",
            "TTTD_TIKTOK_CONCURRENCY": "many",
            "TTTD_CONFIG": "/etc/tttd/tttd.yaml",
            "TTTD_FFMPEG": "/usr/local/bin/ffmpeg",
            "TTTD_SECRETS_WEBHOOK_SECRET_NOBODY": "x",
        ]
        let (path, found) = try await problems(yaml, environment: environment)
        let expected = [
            "\(path): database.url: \"mysql://tttd@db/tttd\" is not a usable PostgreSQL URL: it must start with postgresql:// (postgresql://user@host:port/db or postgresql://user@/db?host=/socket/dir)",
            "\(path): control.admin_group: \"\" is not a Unix group name",
            "\(path): tiktok.web_url: \"not a url\" is not a http:// or https:// URL",
            "\(path): tiktok.requests_per_second: must be more than 0, not 0",
            "\(path): tiktok.proxies: \"ftp://p:21\" is not a http:// or https:// URL",
            "\(path): detection.interval: must be longer than 0, not 0s",
            "\(path): detection.offline_confirmations: \"two\" is not a whole number",
            "\(path): transcription.enabled: \"maybe\" is not true or false",
            "\(path): transcription.language: \"French\" is not a language code (ISO 639-1, e.g. fr, or auto)",
            "\(path): transcription.max_pipelines: must be at least 1, not 0",
            "\(path): analysis.temperature: must be between 0 and 2, not 3",
            "\(path): analysis.risk_threshold: must be between 0 and 1, not 1.5",
            "\(path): analysis.requests_per_minute: must be more than 0, not -1",
            "\(path): analysis.always_alert: \"sarcasm\" is not a hate type (insult, stigmatization, dehumanization, call_to_violence)",
            "\(path): alerts.cooldown: \"soon\" is not a duration (use 500ms, 30s, 2m, 1h, 90d)",
            "\(path): alerts.email.from: is required when alerts.email.smtp_url and alerts.email.to are set",
            "\(path): alerts.email.to: \"not-an-address\" is not an email address",
            "\(path): alerts.email.events: \"everything\" is not an event type (alert, live_started, live_ended, pipeline_failed)",
            "\(path): alerts.webhooks[1].name: duplicate webhook name \"ops\" (also alerts.webhooks[0])",
            "\(path): alerts.webhooks[1].events: \"nope\" is not an event type (alert, live_started, live_ended, pipeline_failed)",
            "\(path): alerts.webhooks[2].name: is required",
            "\(path): alerts.webhooks[3].url: is required",
            "\(path): metrics.listen: \"localhost\" is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)",
            "\(path): retention.transcripts: \"90 days\" is not a duration or forever (use 90d, 12h, forever)",
            "\(path): log.level: \"verbose\" is not a log level (trace, debug, info, notice, warning, error, critical)",
            "environment: TTTD_TIKTOK_CONCURRENCY: \"many\" is not a whole number",
            "environment: TTTD_DETECTION_INTERVALL: unknown variable (did you mean TTTD_DETECTION_INTERVAL?)",
            "environment: TTTD_SECRETS_WEBHOOK_SECRET_NOBODY: no webhook in alerts.webhooks has this name",
        ]
        #expect(found.map(\.description) == expected)
        for (line, (got, want)) in zip(found.map(\.description), expected).enumerated() where got != want {
            Issue.record("problem \(line): got\n\(got)\nwant\n\(want)")
        }
    }

    @Test func environmentValuesAreCheckedAndNamedAsVariables() async throws {
        let (_, found) = try await problems(minimalYAML, environment: [
            "TTTD_DETECTION_INTERVAL": "3 parsecs",
            "TTTD_ALERTS_EMAIL_SMTP_URL": "smtp://a@b",
            "TTTD_ALERTS_WEBHOOKS": "[{name: ops}]",
        ])
        #expect(found.map(\.description) == [
            "environment: TTTD_DETECTION_INTERVAL: \"3 parsecs\" is not a duration (use 500ms, 30s, 2m, 1h, 90d)",
            "environment: TTTD_ALERTS_EMAIL_FROM: is required when TTTD_ALERTS_EMAIL_SMTP_URL is set",
            "environment: TTTD_ALERTS_EMAIL_TO: is required when TTTD_ALERTS_EMAIL_SMTP_URL is set",
            "environment: TTTD_ALERTS_WEBHOOKS[0].url: is required",
        ])
    }

    @Test func aMalformedWebhookListInTheEnvironment() async throws {
        let (_, found) = try await problems(minimalYAML, environment: ["TTTD_ALERTS_WEBHOOKS": "[{name: ops"])
        #expect(found.count == 1)
        #expect(found.first?.key == "TTTD_ALERTS_WEBHOOKS")
        #expect(found.first?.message.hasPrefix("YAML syntax error") == true)
    }

    @Test func wrongShapes() async throws {
        let yaml = minimalYAML + """
            control: /run/tttd.sock
            tiktok:
              concurrency: [1, 2]
              proxies: {a: b}
            secrets:
              webhook_secret_ghost: whsec_x

            """
        let (path, found) = try await problems(yaml)
        #expect(found.map(\.description) == [
            "\(path): control: must be a section of keys, not a single value",
            "\(path): tiktok.concurrency: must be a single value, not a list",
            "\(path): tiktok.proxies: must be a list, not a section of keys",
            "\(path): secrets.webhook_secret_ghost: no webhook in alerts.webhooks is named \"ghost\"",
        ])
    }

    @Test func theTopLevelMustBeAMapping() async throws {
        let (path, found) = try await problems("- a\n- b\n")
        #expect(found.map(\.description) == [
            "\(path): the file must be a mapping of keys (section: key: value), not a list",
        ])
    }

    @Test func problemsHaveNoDuplicates() {
        var collector = ProblemCollector()
        let problem = ConfigProblem(source: "f", key: "k", message: "m")
        collector.add(problem, rank: .init(group: 1, line: 2))
        collector.add(problem, rank: .init(group: 1, line: 1))
        #expect(collector.sorted == [problem])
    }
}
