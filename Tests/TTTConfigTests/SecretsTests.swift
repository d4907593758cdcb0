import Testing
@testable import TTTConfig

@Suite struct SecretsTests {
    let yaml = """
        database:
          url: postgresql://tttd:url-password@db:5432/tttd
        alerts:
          webhooks:
            - name: ops
              url: https://hooks.example.org/ops
              secret: whsec_inline_ops
            - name: chat
              url: https://hooks.example.org/chat
              secret: whsec_inline_chat
            - name: bare
              url: https://hooks.example.org/bare
        secrets:
          smtp_password: file-smtp
          tiktok_session: file-session
          webhook_secret_chat: whsec_section_chat

        """

    @Test func fromTheCredentialsDirectory() async throws {
        let credentials = try TemporaryDirectory()
        try credentials.write("database_password", "cred-db\n")
        try credentials.write("groq_api_key", "cred-groq\n")
        try credentials.write("smtp_password", "cred-smtp\n")
        try credentials.write("webhook_secret_ops", "whsec_cred_ops\n")
        try credentials.write("unrelated", "systemd may pass other credentials\n")
        let config = try await load(yaml, environment: ["CREDENTIALS_DIRECTORY": credentials.path]).result.get()

        #expect(config.secrets == Secrets(
            databasePassword: "cred-db",           // the credential wins over the URL's password
            transcriptionAPIKey: "cred-groq",      // groq_api_key serves both API keys
            analysisAPIKey: "cred-groq",
            smtpPassword: "cred-smtp",             // the credential wins over the file's secrets section
            tiktokSession: "file-session",         // development fallback: the file
            webhookSecrets: ["ops": "whsec_cred_ops", "chat": "whsec_inline_chat"]))
        #expect(config.alerts.webhooks.map(\.secret) == ["whsec_cred_ops", "whsec_inline_chat", nil])
    }

    @Test func specificAPIKeysWinOverTheGroqKey() async throws {
        let credentials = try TemporaryDirectory()
        try credentials.write("groq_api_key", "cred-groq\n")
        try credentials.write("analysis_api_key", "cred-llm\n")
        let config = try await load(minimalYAML, environment: ["CREDENTIALS_DIRECTORY": credentials.path]).result.get()
        #expect(config.secrets.transcriptionAPIKey == "cred-groq")
        #expect(config.secrets.analysisAPIKey == "cred-llm")
    }

    @Test func theURLPasswordWhenNoOtherSourceGivesOne() async throws {
        let config = try await load(yaml).result.get()
        #expect(config.secrets.databasePassword == "url-password")
        #expect(config.secrets.transcriptionAPIKey == nil)
        #expect(config.secrets.webhookSecrets == ["ops": "whsec_inline_ops", "chat": "whsec_inline_chat"])
    }

    @Test func descriptionsNameSecretsButNeverShowThem() async throws {
        let credentials = try TemporaryDirectory()
        try credentials.write("groq_api_key", "gsk_verysecret\n")
        let config = try await load(yaml, environment: ["CREDENTIALS_DIRECTORY": credentials.path]).result.get()
        #expect(config.secrets.description == "secrets: database_password, transcription_api_key, analysis_api_key, "
            + "smtp_password, tiktok_session, webhook_secret_chat, webhook_secret_ops")
        let printed = [String(describing: config), String(reflecting: config), "\(config.secrets)",
                       String(reflecting: config.secrets), "\(config.alerts)", "\(config.database)"]
        for text in printed {
            for secret in ["gsk_verysecret", "url-password", "file-smtp", "file-session", "whsec_inline", "whsec_section"] {
                #expect(!text.contains(secret), "\(secret) shown in \(text)")
            }
        }
    }

    @Test func problemsNeverShowSecrets() async throws {
        let yaml = """
            database:
              url: postgresql://tttd:hunter2@db/tttd?sslmode=require
            alerts:
              email:
                smtp_url: ftp://me:mailpass@mail.example.org
              webhooks:
                - name: bad name
                  url: https://user:hookpass@nowhere
                  secret: whsec_never_shown
            tiktok:
              proxies: ["socks://u:proxypass@p:1080"]
            secrets:
              groq_api_key: [not, a, single, value, gsk_list]

            """
        let (_, found) = try await problems(yaml, environment: ["TTTD_SECRETS_SMTP_PASSWORD": "env-secret"])
        #expect(found.count >= 5)
        for problem in found {
            for secret in ["hunter2", "mailpass", "whsec_never_shown", "proxypass", "env-secret", "gsk_list"] {
                #expect(!problem.description.contains(secret), "\(secret) shown in \(problem)")
            }
        }
    }

    @Test func anUnreadableCredentialsDirectoryIsAProblem() async throws {
        let (_, found) = try await problems(minimalYAML, environment: ["CREDENTIALS_DIRECTORY": "/nonexistent/tttd-credentials"])
        #expect(found == [ConfigProblem(source: "credentials", key: "CREDENTIALS_DIRECTORY",
                                        message: "cannot read the directory /nonexistent/tttd-credentials")])
    }
}
