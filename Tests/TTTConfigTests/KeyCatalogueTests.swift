import Testing
@testable import TTTConfig

@Suite struct KeyCatalogueTests {
    @Test(arguments: [
        ("detection.intervall", "detection.interval"),
        ("log_level", "log.level"),
        ("alerts.email.smtp", "alerts.email.smtp_url"),
        ("tiktok.interval", "detection.interval"),
        ("tiktok.request_per_second", "tiktok.requests_per_second"),
        ("transcripton", "transcription"),
        ("analysis.risk_treshold", "analysis.risk_threshold"),
    ])
    func suggestsTheNearestKey(typed: String, expected: String) {
        #expect(KeyCatalogue.suggestion(for: typed, among: KeyCatalogue.fileCandidates) == expected)
    }

    @Test func suggestsNothingForNonsense() {
        #expect(KeyCatalogue.suggestion(for: "qwertyuiop", among: KeyCatalogue.fileCandidates) == nil)
    }

    @Test func environmentNames() {
        #expect(KeyCatalogue.environmentName("detection.interval") == "TTTD_DETECTION_INTERVAL")
        #expect(KeyCatalogue.environmentName("alerts.email.smtp_url") == "TTTD_ALERTS_EMAIL_SMTP_URL")
        #expect(KeyCatalogue.environmentName("secrets.webhook_secret_ops-team") == "TTTD_SECRETS_WEBHOOK_SECRET_OPS_TEAM")
        #expect(KeyCatalogue.environmentName("secrets.webhook_secret_opsTeam") == "TTTD_SECRETS_WEBHOOK_SECRET_OPS_TEAM")
    }

    @Test func aCamelCaseWebhookSecretFromTheEnvironment() async throws {
        let yaml = minimalYAML + "alerts:\n  webhooks:\n    - {name: opsTeam, url: \"https://example.org\"}\n"
        let config = try await load(yaml, environment: ["TTTD_SECRETS_WEBHOOK_SECRET_OPS_TEAM": "whsec_x"]).result.get()
        #expect(config.secrets.webhookSecrets == ["opsTeam": "whsec_x"])
    }
}
