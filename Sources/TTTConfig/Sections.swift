/// Each section of the configuration read and validated key by key; a refused value leaves the
/// default in place and adds a problem, so that one load reports every problem.
extension ValueReader {
    typealias C = TTTConfiguration

    mutating func control() -> C.Control {
        let d = C.Control()
        return C.Control(
            socket: value("control.socket", default: d.socket, Parse.nonEmpty),
            adminGroup: value("control.admin_group", default: d.adminGroup, Parse.group),
            viewerGroup: value("control.viewer_group", default: d.viewerGroup, Parse.group))
    }

    mutating func tiktok() -> C.TikTok {
        let d = C.TikTok()
        return C.TikTok(
            webURL: value("tiktok.web_url", default: d.webURL, Parse.httpURL),
            webcastURL: value("tiktok.webcast_url", default: d.webcastURL, Parse.httpURL),
            requestsPerSecond: value("tiktok.requests_per_second", default: d.requestsPerSecond, Parse.positiveNumber),
            concurrency: value("tiktok.concurrency", default: d.concurrency) { text throws(Invalid) in
                try Parse.integer(text, atLeast: 1)
            },
            proxies: list("tiktok.proxies", default: d.proxies, Parse.httpURL))
    }

    mutating func detection() -> C.Detection {
        let d = C.Detection()
        return C.Detection(
            interval: value("detection.interval", default: d.interval, Parse.positiveDuration),
            offlineConfirmations: value("detection.offline_confirmations", default: d.offlineConfirmations) {
                text throws(Invalid) in try Parse.integer(text, atLeast: 1)
            },
            liveRecheck: value("detection.live_recheck", default: d.liveRecheck, Parse.positiveDuration),
            lease: value("detection.lease", default: d.lease, Parse.positiveDuration))
    }

    mutating func transcription() -> C.Transcription {
        let d = C.Transcription()
        return C.Transcription(
            enabled: value("transcription.enabled", default: d.enabled, Parse.bool),
            baseURL: value("transcription.base_url", default: d.baseURL, Parse.httpURL),
            model: value("transcription.model", default: d.model, Parse.nonEmpty),
            language: value("transcription.language", default: d.language, Parse.language),
            window: value("transcription.window", default: d.window, Parse.positiveDuration),
            maxPipelines: value("transcription.max_pipelines", default: d.maxPipelines) { text throws(Invalid) in
                try Parse.integer(text, atLeast: 1)
            },
            giveUpAfter: value("transcription.give_up_after", default: d.giveUpAfter, Parse.positiveDuration))
    }

    mutating func analysis() -> C.Analysis {
        let d = C.Analysis()
        return C.Analysis(
            enabled: value("analysis.enabled", default: d.enabled, Parse.bool),
            baseURL: value("analysis.base_url", default: d.baseURL, Parse.httpURL),
            model: value("analysis.model", default: d.model, Parse.nonEmpty),
            temperature: value("analysis.temperature", default: d.temperature) { text throws(Invalid) in
                try Parse.number(text, in: 0...2)
            },
            requestsPerMinute: value("analysis.requests_per_minute", default: d.requestsPerMinute, Parse.positiveNumber),
            prompt: value("analysis.prompt", default: d.prompt, Parse.nonEmpty),
            riskThreshold: value("analysis.risk_threshold", default: d.riskThreshold) { text throws(Invalid) in
                try Parse.number(text, in: 0...1)
            },
            alwaysAlert: list("analysis.always_alert", default: d.alwaysAlert, Parse.hateType),
            scoreWeights: scoreWeights(d.scoreWeights))
    }

    mutating func scoreWeights(_ d: C.Analysis.ScoreWeights) -> C.Analysis.ScoreWeights {
        let weight = { (text: String) throws(Invalid) -> Double in try Parse.number(text, in: 0...1) }
        return C.Analysis.ScoreWeights(
            base: value("analysis.score_weights.base", default: d.base, weight),
            medium: value("analysis.score_weights.medium", default: d.medium, weight),
            high: value("analysis.score_weights.high", default: d.high, weight),
            hateful: value("analysis.score_weights.hateful", default: d.hateful, weight))
    }

    /// `alerts.email` exists as soon as one of its addresses is given; then all are required.
    mutating func email(checkCompleteness: Bool) -> C.Email? {
        let smtpURL = optional("alerts.email.smtp_url") { text throws(Invalid) in
            try Parse.url(text, schemes: ["smtp", "smtps"])
        }
        let from = optional("alerts.email.from", Parse.emailAddress)
        let to = list("alerts.email.to", default: [], Parse.emailAddress)
        let events = list("alerts.email.events", default: ["alert"], Parse.eventType)
        // Given as written, valid or not: a refused value already has its own problem.
        let required = ["alerts.email.smtp_url", "alerts.email.from", "alerts.email.to"]
        let given = required.filter { key in
            key == "alerts.email.to" ? !(items(key) ?? []).isEmpty : !(text(key) ?? "").trimmingWhitespace().isEmpty
        }
        guard !given.isEmpty else { return nil }
        if checkCompleteness {
            let setWith = given.map { origin(of: $0) == .environment ? KeyCatalogue.environmentName($0) : $0 }
            let verb = given.count == 1 ? "is" : "are"
            // Named where the operator is working: the environment if that is where email was set.
            let namedIn: Origin = given.allSatisfy { origin(of: $0) == .environment } ? .environment : .file
            for key in required where !given.contains(key) {
                report(key, "is required when \(setWith.joined(separator: " and ")) \(verb) set", origin: namedIn,
                       line: lines["alerts.email"])
            }
        }
        guard let smtpURL, let from, !to.isEmpty else { return nil }
        return C.Email(smtpURL: smtpURL, from: from, to: to, events: events)
    }

    /// Validates the webhooks as written; secrets are attached later, once all sources are known.
    mutating func webhooks(_ raw: [RawWebhook], origin: Origin) -> [C.Webhook] {
        var webhooks: [C.Webhook] = []
        var firstByName: [String: String] = [:]
        for item in raw {
            var valid = true
            var name = ""
            if let text = item.name {
                do {
                    name = try Parse.webhookName(text)
                    if let first = firstByName[name] {
                        reportItem(item, "name", "duplicate webhook name \"\(name)\" (also \(first))", origin: origin)
                        valid = false
                    } else {
                        firstByName[name] = item.key
                    }
                } catch {
                    reportItem(item, "name", error.message, origin: origin)
                    valid = false
                }
            } else {
                reportItem(item, "name", "is required", origin: origin)
                valid = false
            }
            var url = ""
            if let text = item.url {
                do { url = try Parse.httpURL(text) } catch {
                    reportItem(item, "url", error.message, origin: origin)
                    valid = false
                }
            } else {
                reportItem(item, "url", "is required", origin: origin)
                valid = false
            }
            var events: [String] = []
            for event in item.events ?? ["alert"] {
                do { events.append(try Parse.eventType(event)) } catch {
                    reportItem(item, "events", error.message, origin: origin)
                    valid = false
                }
            }
            if valid { webhooks.append(C.Webhook(name: name, url: url, secret: nil, events: events)) }
        }
        return webhooks
    }

    /// A problem about one field of one webhook: `alerts.webhooks[1].url` (or `TTTD_ALERTS_WEBHOOKS[1].url`).
    private mutating func reportItem(_ item: RawWebhook, _ field: String, _ message: String, origin: Origin) {
        let index = KeyCatalogue.index(of: "alerts.webhooks")
        let key = "\(item.key).\(field)"
        switch origin {
        case .environment:
            problems.add(ConfigProblem(source: "environment", key: key, message: message),
                         rank: .init(group: 2, index: index))
        case .file:
            problems.add(ConfigProblem(source: path, key: key, message: message),
                         rank: .init(group: 1, line: item.fieldLines[field] ?? item.lastLine ?? item.line ?? Int.max,
                                     index: index))
        }
    }

    mutating func retention() -> C.Retention {
        C.Retention(
            transcripts: value("retention.transcripts", default: .forever, Parse.retention),
            analyses: value("retention.analyses", default: .forever, Parse.retention),
            evidence: value("retention.evidence", default: .forever, Parse.retention),
            events: value("retention.events", default: .forever, Parse.retention))
    }
}
