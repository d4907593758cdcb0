extension TTTConfiguration {
    /// Keys (dotted) whose values differ between self and `new`, split into what SIGHUP can apply
    /// and what needs a restart (database.* and `restartOnlyKeys`); everything else can be applied.
    /// Secrets are named, never shown.
    /// What tttd sets up once at start: the control socket, the metrics listener, the TikTok
    /// egresses (their HTTP clients, proxies and session), the ASR client, and the database connection.
    public static let restartOnlyKeys: Set<String> = [
        "control.socket", "metrics.listen", "tiktok.web_url", "tiktok.webcast_url", "tiktok.proxies",
        "tiktok.concurrency", "secrets.database_password", "secrets.tiktok_session",
        "transcription.base_url", "secrets.transcription_api_key",
        "analysis.enabled", "analysis.base_url", "analysis.model", "analysis.temperature", "analysis.prompt",
        "secrets.analysis_api_key", "secrets.smtp_password",
    ]
    /// Key families set up once at start too: the alert channels and their secrets.
    public static let restartOnlyPrefixes = ["database.", "alerts.email", "alerts.webhooks", "secrets.webhook_secret_"]

    public func changes(to new: TTTConfiguration) -> (reloadable: [String], needRestart: [String]) {
        var changed: [String] = []
        func check<T: Equatable>(_ key: String, _ old: T, _ new: T) {
            if old != new { changed.append(key) }
        }
        check("database.url", database.url, new.database.url)
        check("control.socket", control.socket, new.control.socket)
        check("control.admin_group", control.adminGroup, new.control.adminGroup)
        check("control.viewer_group", control.viewerGroup, new.control.viewerGroup)
        check("tiktok.web_url", tiktok.webURL, new.tiktok.webURL)
        check("tiktok.webcast_url", tiktok.webcastURL, new.tiktok.webcastURL)
        check("tiktok.requests_per_second", tiktok.requestsPerSecond, new.tiktok.requestsPerSecond)
        check("tiktok.concurrency", tiktok.concurrency, new.tiktok.concurrency)
        check("tiktok.proxies", tiktok.proxies, new.tiktok.proxies)
        check("detection.interval", detection.interval, new.detection.interval)
        check("detection.offline_confirmations", detection.offlineConfirmations, new.detection.offlineConfirmations)
        check("detection.live_recheck", detection.liveRecheck, new.detection.liveRecheck)
        check("detection.lease", detection.lease, new.detection.lease)
        check("transcription.enabled", transcription.enabled, new.transcription.enabled)
        check("transcription.base_url", transcription.baseURL, new.transcription.baseURL)
        check("transcription.model", transcription.model, new.transcription.model)
        check("transcription.language", transcription.language, new.transcription.language)
        check("transcription.window", transcription.window, new.transcription.window)
        check("transcription.max_pipelines", transcription.maxPipelines, new.transcription.maxPipelines)
        check("transcription.give_up_after", transcription.giveUpAfter, new.transcription.giveUpAfter)
        check("analysis.enabled", analysis.enabled, new.analysis.enabled)
        check("analysis.base_url", analysis.baseURL, new.analysis.baseURL)
        check("analysis.model", analysis.model, new.analysis.model)
        check("analysis.temperature", analysis.temperature, new.analysis.temperature)
        check("analysis.requests_per_minute", analysis.requestsPerMinute, new.analysis.requestsPerMinute)
        check("analysis.prompt", analysis.prompt, new.analysis.prompt)
        check("analysis.risk_threshold", analysis.riskThreshold, new.analysis.riskThreshold)
        check("analysis.always_alert", analysis.alwaysAlert, new.analysis.alwaysAlert)
        check("analysis.score_weights", analysis.scoreWeights, new.analysis.scoreWeights)
        check("alerts.cooldown", alerts.cooldown, new.alerts.cooldown)
        if (alerts.email == nil) != (new.alerts.email == nil) {
            changed.append("alerts.email")
        } else if let old = alerts.email, let new = new.alerts.email {
            check("alerts.email.smtp_url", old.smtpURL, new.smtpURL)
            check("alerts.email.from", old.from, new.from)
            check("alerts.email.to", old.to, new.to)
            check("alerts.email.events", old.events, new.events)
        }
        // A webhook's secret is compared under secrets.webhook_secret_<name> below.
        let withoutSecrets = { (hooks: [Webhook]) in hooks.map { Webhook(name: $0.name, url: $0.url, events: $0.events) } }
        check("alerts.webhooks", withoutSecrets(alerts.webhooks), withoutSecrets(new.alerts.webhooks))
        check("evidence.directory", evidence.directory, new.evidence.directory)
        check("metrics.listen", metrics.listen, new.metrics.listen)
        check("retention.transcripts", retention.transcripts, new.retention.transcripts)
        check("retention.analyses", retention.analyses, new.retention.analyses)
        check("retention.evidence", retention.evidence, new.retention.evidence)
        check("retention.events", retention.events, new.retention.events)
        check("log.level", log.level, new.log.level)
        check("secrets.database_password", secrets.databasePassword, new.secrets.databasePassword)
        check("secrets.transcription_api_key", secrets.transcriptionAPIKey, new.secrets.transcriptionAPIKey)
        check("secrets.analysis_api_key", secrets.analysisAPIKey, new.secrets.analysisAPIKey)
        check("secrets.smtp_password", secrets.smtpPassword, new.secrets.smtpPassword)
        check("secrets.tiktok_session", secrets.tiktokSession, new.secrets.tiktokSession)
        for name in Set(secrets.webhookSecrets.keys).union(new.secrets.webhookSecrets.keys).sorted() {
            check("secrets.webhook_secret_\(name)", secrets.webhookSecrets[name], new.secrets.webhookSecrets[name])
        }

        let needRestart = changed.filter { key in
            Self.restartOnlyKeys.contains(key) || Self.restartOnlyPrefixes.contains { key.hasPrefix($0) }
        }
        return (changed.filter { !needRestart.contains($0) }, needRestart)
    }
}
