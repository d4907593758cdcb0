/// Every key the configuration knows, in the documented order. The loader checks the file and the
/// environment against it, so that a typo is reported (with the nearest key) instead of being
/// silently ignored while the default applies.
enum KeyCatalogue {
    enum Kind: Equatable {
        /// One value.
        case scalar
        /// A list; from the environment (or a single YAML value) it is comma-separated.
        case list
        /// `alerts.webhooks`: a list of mappings (in the environment, a YAML flow sequence).
        case webhooks
    }

    struct Key {
        var path: String
        var kind: Kind
        var isSecret = false
    }

    static let keys: [Key] = [
        Key(path: "database.url", kind: .scalar),
        Key(path: "control.socket", kind: .scalar),
        Key(path: "control.admin_group", kind: .scalar),
        Key(path: "control.viewer_group", kind: .scalar),
        Key(path: "tiktok.web_url", kind: .scalar),
        Key(path: "tiktok.webcast_url", kind: .scalar),
        Key(path: "tiktok.requests_per_second", kind: .scalar),
        Key(path: "tiktok.concurrency", kind: .scalar),
        Key(path: "tiktok.proxies", kind: .list),
        Key(path: "detection.interval", kind: .scalar),
        Key(path: "detection.offline_confirmations", kind: .scalar),
        Key(path: "detection.live_recheck", kind: .scalar),
        Key(path: "detection.lease", kind: .scalar),
        Key(path: "transcription.enabled", kind: .scalar),
        Key(path: "transcription.base_url", kind: .scalar),
        Key(path: "transcription.model", kind: .scalar),
        Key(path: "transcription.language", kind: .scalar),
        Key(path: "transcription.window", kind: .scalar),
        Key(path: "transcription.max_pipelines", kind: .scalar),
        Key(path: "transcription.give_up_after", kind: .scalar),
        Key(path: "analysis.enabled", kind: .scalar),
        Key(path: "analysis.base_url", kind: .scalar),
        Key(path: "analysis.model", kind: .scalar),
        Key(path: "analysis.temperature", kind: .scalar),
        Key(path: "analysis.requests_per_minute", kind: .scalar),
        Key(path: "analysis.prompt", kind: .scalar),
        Key(path: "analysis.risk_threshold", kind: .scalar),
        Key(path: "analysis.always_alert", kind: .list),
        Key(path: "analysis.score_weights.base", kind: .scalar),
        Key(path: "analysis.score_weights.medium", kind: .scalar),
        Key(path: "analysis.score_weights.high", kind: .scalar),
        Key(path: "analysis.score_weights.hateful", kind: .scalar),
        Key(path: "alerts.cooldown", kind: .scalar),
        Key(path: "alerts.email.smtp_url", kind: .scalar),
        Key(path: "alerts.email.from", kind: .scalar),
        Key(path: "alerts.email.to", kind: .list),
        Key(path: "alerts.email.events", kind: .list),
        Key(path: "alerts.webhooks", kind: .webhooks),
        Key(path: "evidence.directory", kind: .scalar),
        Key(path: "metrics.listen", kind: .scalar),
        Key(path: "retention.transcripts", kind: .scalar),
        Key(path: "retention.analyses", kind: .scalar),
        Key(path: "retention.evidence", kind: .scalar),
        Key(path: "retention.events", kind: .scalar),
        Key(path: "log.level", kind: .scalar),
    ] + SecretName.fixed.map { Key(path: "secrets." + $0, kind: .scalar, isSecret: true) }

    /// The keys of one item of `alerts.webhooks`.
    static let webhookFields: [Key] = [
        Key(path: "name", kind: .scalar), Key(path: "url", kind: .scalar),
        Key(path: "secret", kind: .scalar, isSecret: true), Key(path: "events", kind: .list),
    ]

    /// `secrets.webhook_secret_<name>`: the one family of keys named after something configured.
    static let webhookSecretPrefix = "secrets." + SecretName.webhookPrefix

    private static let byPath: [String: (index: Int, key: Key)] = Dictionary(
        uniqueKeysWithValues: keys.enumerated().map { ($1.path, ($0, $1)) })

    /// Mappings that group keys (`alerts`, `alerts.email`, …).
    static let sections: Set<String> = Set(keys.flatMap { key in
        let parts = key.path.split(separator: ".")
        return (1..<parts.count).map { parts[..<$0].joined(separator: ".") }
    })

    static func key(_ path: String) -> Key? {
        if let known = byPath[path]?.key { return known }
        if path.hasPrefix(webhookSecretPrefix), path.count > webhookSecretPrefix.count {
            return Key(path: path, kind: .scalar, isSecret: true)
        }
        return nil
    }

    /// Position in the documented order (for sorting problems); dynamic keys sort with their family.
    static func index(of path: String) -> Int {
        if let index = byPath[path]?.index { return index }
        if path.hasPrefix(webhookSecretPrefix) { return keys.count }
        if path.hasPrefix("alerts.webhooks") { return byPath["alerts.webhooks"]?.index ?? keys.count }
        return keys.count + 1
    }

    /// `TTTD_` + the path upper-cased, `.` (and anything not a letter or digit) → `_`: the rule
    /// swift-configuration's EnvironmentVariablesProvider applies to the key `tttd.<path>`.
    static func environmentName(_ path: String) -> String {
        var name = "TTTD_"
        var previous: Character?
        for character in path {
            // camelCase boundaries become "_" too (a webhook named opsTeam → …_OPS_TEAM), as in the provider.
            if let previous, previous.isLowercase, character.isUppercase { name += "_" }
            name += character.isLetter || character.isNumber ? character.uppercased() : "_"
            previous = character
        }
        return name
    }

    /// What an unknown key most likely meant, if anything is close enough to say so, in order:
    /// a key at most two edits away; a key of the same section that starts with what was typed or is its start (`smtp` →
    /// `smtp_url`, `intervall` → `interval`); the nearest key by edit distance, within a third of
    /// the name's length; a key of another section with the same name (a key put in the wrong place).
    static func suggestion(for unknown: String, among candidates: [String]) -> String? {
        func split(_ path: String) -> (section: Substring, name: Substring) {
            guard let dot = path.lastIndex(of: ".") else { return ("", Substring(path)) }
            return (path[..<dot], path[path.index(after: dot)...])
        }
        let typed = split(unknown)
        let scored = candidates.filter { $0 != unknown }.map { ($0, editDistance(unknown, $0)) }
        let sameSectionPrefix = scored.filter { candidate, _ in
            let known = split(candidate)
            return known.section == typed.section && min(known.name.count, typed.name.count) >= 3
                && (known.name.hasPrefix(typed.name) || typed.name.hasPrefix(known.name))
        }
        let nearest = scored.min(by: { $0.1 < $1.1 })
        if let nearest, nearest.1 <= 2 { return nearest.0 }
        if let best = sameSectionPrefix.min(by: { $0.1 < $1.1 }) { return best.0 }
        if let nearest, nearest.1 <= max(2, unknown.count / 3) { return nearest.0 }
        return scored.filter { split($0.0).name == typed.name }.min(by: { $0.1 < $1.1 })?.0
    }

    /// Candidate names for a key of the file: every key and section.
    static var fileCandidates: [String] { keys.map(\.path) + sections.sorted() + [webhookSecretPrefix + "<name>"] }

    /// Levenshtein distance over characters.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                let substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)
                current[j] = min(substitution, previous[j] + 1, current[j - 1] + 1)
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
