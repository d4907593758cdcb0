import Testing
@testable import TTTConfig

@Suite struct ChangesTests {
    let base = TTTConfiguration(database: .init(url: DatabaseURL(user: "tttd", database: "tttd", socketDirectory: "/run/postgresql")))

    @Test func noChange() {
        let changes = base.changes(to: base)
        #expect(changes.reloadable.isEmpty)
        #expect(changes.needRestart.isEmpty)
    }

    @Test func splitsWhatSIGHUPCanApply() {
        var new = base
        new.detection.interval = .seconds(30)
        new.log.level = "debug"
        new.analysis.alwaysAlert = ["insult"]
        new.alerts.webhooks = [.init(name: "ops", url: "https://example.org")]
        new.secrets.analysisAPIKey = "key"
        new.database.url.port = 5433
        new.control.socket = "/tmp/c.sock"
        new.metrics.listen = "127.0.0.1:9464"
        new.secrets.databasePassword = "pw"
        new.control.adminGroup = "moderators"
        new.tiktok.proxies = ["http://proxy.example:3128"]
        let changes = base.changes(to: new)
        #expect(changes.reloadable == ["control.admin_group", "detection.interval", "analysis.always_alert", "log.level"])
        // The alert channels and the analyzer's client are set up at start.
        #expect(changes.needRestart == [
            "database.url", "control.socket", "tiktok.proxies", "alerts.webhooks", "metrics.listen",
            "secrets.database_password", "secrets.analysis_api_key",
        ])
    }

    @Test func emailAndWebhookSecrets() {
        var old = base
        old.alerts.email = .init(smtpURL: "smtp://a@b", from: "a@b", to: ["c@d"])
        old.alerts.webhooks = [.init(name: "ops", url: "https://example.org", secret: "s1")]
        old.secrets.webhookSecrets = ["ops": "s1"]
        var new = old
        new.alerts.email?.to = ["e@f"]
        new.alerts.webhooks[0].secret = "s2"
        new.secrets.webhookSecrets = ["ops": "s2"]
        let changes = old.changes(to: new)
        // Channels are built at start: changing them, or their secrets, needs a restart.
        #expect(changes.needRestart == ["alerts.email.to", "secrets.webhook_secret_ops"])
        #expect(changes.reloadable.isEmpty)

        var without = old
        without.alerts.email = nil
        #expect(old.changes(to: without).needRestart == ["alerts.email"])
        var cooler = old
        cooler.alerts.cooldown = .seconds(60)
        #expect(old.changes(to: cooler).reloadable == ["alerts.cooldown"])
    }
}
