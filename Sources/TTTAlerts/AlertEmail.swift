import Foundation

/// The words of the e-mails tttd sends (the moderators read French).
///
/// `alert` events (the keys of `tttctl alerts --json` plus "type"; also read when present:
/// "title"/"live_title", "citation", "quote_verified", "manipulation", "virality") give a full
/// report and the `tttctl alerts ack ID` command; `live_started`, `live_ended`, `pipeline_failed`
/// (and `pipeline_state`) a short message; any other type a list of its keys.
/// Everything that comes from a live (title, username, transcript, citation) is untrusted: control
/// characters are removed, one-line fields stay on one line, long texts are cut, so that a title
/// cannot forge lines of the e-mail (an `ack` command, a verdict) or headers.
public enum AlertEmail {
    public static func subject(for event: [String: Any]) -> String {
        let account = accountName(event)
        switch eventType(event) {
        case "alert":
            var what = label(event["hate_type"], hateTypes) ?? label(event["category"], categories) ?? "contenu à risque"
            if what.isEmpty { what = "contenu à risque" }
            let id = oneLine(event["id"]).map { " n° \($0)" } ?? ""
            let risk = score(event["risk_score"]).map { ", risque \($0)" } ?? ""
            return "[tttd] Alerte\(id) : \(what) chez \(account)\(risk)"
        case "live_started":
            let title = oneLine(event["title"], limit: 80).map { " : « \($0) »" } ?? ""
            return "[tttd] \(account) est en live\(title)"
        case "live_ended":
            return "[tttd] Fin du live de \(account)"
        case "pipeline_failed", "pipeline_state":
            let live = oneLine(event["live_id"]).map { " (live \($0))" } ?? ""
            return "[tttd] Transcription en échec\(account == unknownAccount ? "" : " pour \(account)")\(live)"
        case let other:
            return "[tttd] Événement \(other)\(account == unknownAccount ? "" : " : \(account)")"
        }
    }

    public static func body(for event: [String: Any]) -> String {
        switch eventType(event) {
        case "alert": alertBody(event)
        case "live_started", "live_ended": liveBody(event)
        case "pipeline_failed", "pipeline_state": pipelineBody(event)
        default: genericBody(event)
        }
    }

    // MARK: - Bodies

    private static func alertBody(_ event: [String: Any]) -> String {
        let id = oneLine(event["id"]) ?? "ID"
        let account = accountName(event)
        var lines: [String] = []
        lines.append("Alerte n° \(id) : des propos à risque ont été relevés dans un live TikTok.")
        lines.append("")
        lines.append(field("Compte", account + (profileURL(event).map { " (\($0))" } ?? "")))
        var live = oneLine(event["live_id"]) ?? "non précisé"
        if let title = oneLine(event["title"] ?? event["live_title"], limit: 200) { live += " — « \(title) »" }
        lines.append(field("Live", live))
        lines.append(field("Heure", time(event["created_at"] ?? event["at"]) ?? "non précisée"))
        var risk = score(event["risk_score"]) ?? "non précisé"
        if let virality = label(event["virality"], viralities) { risk += " (viralité \(virality))" }
        lines.append(field("Risque", risk + " sur 1"))
        lines.append(field("Catégorie", label(event["category"], categories) ?? "non précisée"))
        lines.append(field("Cible", label(event["target"], targets) ?? "aucune"))
        lines.append(field("Type", label(event["hate_type"], hateTypes) ?? "aucun"))
        lines.append("")

        let citation = paragraph(event["citation"])
        let transcript = paragraph(event["text"])
        if let citation {
            lines.append("Propos relevés :")
            lines.append(indented("« \(citation) »"))
            if bool(event["quote_verified"]) == false {
                lines.append("  ATTENTION : ces mots ne figurent pas dans la transcription ; le modèle a pu")
                lines.append("  les inventer. Écoutez l'enregistrement avant d'agir.")
            }
            lines.append("")
        }
        if let transcript, transcript != citation {
            lines.append("Transcription du passage :")
            lines.append(indented("« \(transcript) »"))
            lines.append("")
        }
        if let justification = paragraph(event["justification"]) {
            lines.append("Justification du modèle :")
            lines.append(indented(justification))
            lines.append("")
        }
        if let manipulation = manipulationText(event["manipulation"] ?? event["tentative_manipulation"]) {
            lines.append("ATTENTION : tentative de manipulation du modèle relevée dans le live")
            lines.append("(le locuteur a essayé de dicter le verdict)\(manipulation.isEmpty ? "." : " :")")
            if !manipulation.isEmpty { lines.append(indented(manipulation)) }
            lines.append("")
        }
        if let sha = oneLine(event["evidence_sha256"]) {
            lines.append("Preuve audio : SHA-256 \(sha)")
            lines.append("  Pour l'extraire : tttctl evidence export \(id) DOSSIER")
            lines.append("")
        }
        lines.append("Pour accuser réception de cette alerte :")
        lines.append("  tttctl alerts ack \(id)")
        lines.append("")
        lines.append("Cette analyse est automatique : vérifiez les propos avant toute décision.")
        lines.append(signature)
        return lines.joined(separator: "\n") + "\n"
    }

    private static func liveBody(_ event: [String: Any]) -> String {
        let account = accountName(event)
        let started = eventType(event) == "live_started"
        var lines: [String] = []
        let when = time(event["at"]).map { " (\($0))" } ?? ""
        lines.append(started ? "\(account) a commencé un live\(when)." : "Le live de \(account) est terminé\(when).")
        lines.append("")
        if let title = oneLine(event["title"], limit: 300) { lines.append(field("Titre", "« \(title) »")) }
        if let live = oneLine(event["live_id"]) { lines.append(field("Live", live)) }
        if let room = oneLine(event["room_id"]) { lines.append(field("Salle (room_id)", room)) }
        if started, let url = profileURL(event) { lines.append(field("Regarder", url + "/live")) }
        if started, let name = username(event) {
            lines.append("")
            lines.append("Pour suivre la transcription en direct :")
            lines.append("  tttctl follow @\(name)")
        }
        lines.append(signature)
        return lines.joined(separator: "\n") + "\n"
    }

    private static func pipelineBody(_ event: [String: Any]) -> String {
        var lines: [String] = []
        let account = accountName(event)
        lines.append("La transcription d'un live a échoué\(account == unknownAccount ? "" : " (\(account))") : ses propos ne sont plus analysés.")
        lines.append("")
        if let live = oneLine(event["live_id"]) { lines.append(field("Live", live)) }
        if let state = oneLine(event["state"]) { lines.append(field("État", state)) }
        lines.append(field("Raison", oneLine(event["reason"], limit: 500) ?? "non précisée"))
        if let when = time(event["at"] ?? event["created_at"]) { lines.append(field("Heure", when)) }
        lines.append("")
        lines.append("Pour voir l'état des transcriptions : tttctl pipelines")
        lines.append(signature)
        return lines.joined(separator: "\n") + "\n"
    }

    private static func genericBody(_ event: [String: Any]) -> String {
        var lines = ["Événement « \(eventType(event)) » :", ""]
        for key in event.keys.sorted() where key != "type" {
            lines.append(field(oneLine(key, limit: 40) ?? key, oneLine(event[key], limit: 500) ?? "—"))
        }
        lines.append(signature)
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: - Labels

    static let categories = ["neutral": "neutre", "controversial": "polémique",
                             "potentially_viral": "potentiellement viral", "hate_speech": "discours haineux"]
    static let targets = ["ethnicity": "ethnie", "religion": "religion", "individual": "individu",
                          "social_group": "groupe social", "other": "autre"]
    static let hateTypes = ["insult": "insulte", "stigmatization": "stigmatisation",
                            "dehumanization": "déshumanisation", "call_to_violence": "appel à la violence"]
    static let viralities = ["low": "faible", "medium": "moyenne", "high": "forte"]

    private static let unknownAccount = "un compte inconnu"
    private static let signature = "\n-- \ntttd, surveillance des lives TikTok"

    // MARK: - Values

    private static func eventType(_ event: [String: Any]) -> String {
        oneLine(event["type"], limit: 40) ?? "alert"
    }

    private static func username(_ event: [String: Any]) -> String? {
        guard let raw = oneLine(event["username"] ?? event["account"], limit: 60) else { return nil }
        let name = raw.hasPrefix("@") ? String(raw.dropFirst()) : raw
        return name.isEmpty ? nil : name
    }

    private static func accountName(_ event: [String: Any]) -> String {
        username(event).map { "@\($0)" } ?? unknownAccount
    }

    /// The profile page, only for a username TikTok could have (letters, digits, `_`, `.`).
    private static func profileURL(_ event: [String: Any]) -> String? {
        guard let name = username(event),
              name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || $0 == "_" || $0 == ".") })
        else { return nil }
        return "https://www.tiktok.com/@\(name)"
    }

    private static func field(_ name: String, _ value: String) -> String {
        name.padding(toLength: max(name.count, 10), withPad: " ", startingAt: 0) + " : " + value
    }

    private static func indented(_ text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { "  " + $0 }.joined(separator: "\n")
    }

    /// A value as text on one line (control characters and line breaks become spaces), cut at `limit`.
    static func oneLine(_ value: Any?, limit: Int = 120) -> String? {
        guard let text = string(value) else { return nil }
        let cleaned = snippet(text, limit: limit)
        return cleaned.isEmpty ? nil : cleaned
    }

    /// A longer text: line breaks kept (at most 2 in a row), other control characters dropped, cut at 2,000 characters.
    static func paragraph(_ value: Any?, limit: Int = 2_000) -> String? {
        guard let text = string(value) else { return nil }
        let lines = text.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false)
            .map { snippet(String($0), limit: limit) }
        var kept: [String] = []
        var total = 0
        for line in lines {
            if line.isEmpty && (kept.last?.isEmpty ?? true) { continue }
            if total + line.count > limit {
                kept.append(String(line.prefix(max(0, limit - total))) + "…")
                break
            }
            kept.append(line)
            total += line.count
        }
        while kept.last?.isEmpty == true { kept.removeLast() }
        let result = kept.joined(separator: "\n")
        return result.isEmpty ? nil : result
    }

    private static func string(_ value: Any?) -> String? {
        switch value {
        case nil, is NSNull: return nil
        case let text as String: return text
        case let number as NSNumber:
            if isBoolean(number) { return number.boolValue ? "oui" : "non" }
            return number.stringValue
        case let bool as Bool: return bool ? "oui" : "non"
        case let int as Int: return String(int)
        case let double as Double: return String(double)
        case let value?: return "\(value)"
        }
    }

    /// JSONSerialization's true and false (an NSNumber subclass, unlike 0 and 1).
    private static func isBoolean(_ number: NSNumber) -> Bool {
        ObjectIdentifier(type(of: number)) == ObjectIdentifier(type(of: NSNumber(value: true)))
    }

    /// A JSON true or false; nil for anything else (0 and 1 included).
    private static func boolean(_ value: Any?) -> Bool? {
        if let number = value as? NSNumber { return isBoolean(number) ? number.boolValue : nil }
        return value as? Bool
    }

    private static func bool(_ value: Any?) -> Bool? {
        switch value {
        case let number as NSNumber: return number.boolValue
        case let bool as Bool: return bool
        case let text as String: return ["true", "oui", "1"].contains(text.lowercased()) ? true
            : ["false", "non", "0"].contains(text.lowercased()) ? false : nil
        default: return nil
        }
    }

    /// A risk score as moderators read it: "0,85".
    private static func score(_ value: Any?) -> String? {
        let number: Double?
        switch value {
        case let double as Double: number = double
        case let number_ as NSNumber: number = number_.doubleValue
        case let text as String: number = Double(text)
        default: number = nil
        }
        guard let number, number.isFinite else { return nil }
        return String(format: "%.2f", number).replacingOccurrences(of: ".", with: ",")
    }

    /// A closed value's French label; an unknown value is shown as it came (one line); nil when absent.
    private static func label(_ value: Any?, _ labels: [String: String]) -> String? {
        guard let raw = oneLine(value, limit: 60) else { return nil }
        return labels[raw] ?? raw
    }

    /// Manipulation: true or a description → text ("" when only true); nil when none.
    private static func manipulationText(_ value: Any?) -> String? {
        if let flag = boolean(value) {
            return flag ? "" : nil
        }
        guard let text = paragraph(value, limit: 500) else { return nil }
        if ["false", "non", "no", "none", "aucune", "0"].contains(text.lowercased()) { return nil }
        if ["true", "oui", "yes", "1"].contains(text.lowercased()) { return "" }
        return text
    }

    /// An ISO 8601 time (or Unix seconds) as "01/03/2026 à 14:05:09 UTC"; other text as it came.
    static func time(_ value: Any?) -> String? {
        var date: Date?
        if let number = value as? NSNumber, !isBoolean(number) {
            date = Date(timeIntervalSince1970: number.doubleValue)
        } else if let text = value as? String {
            let plain = ISO8601DateFormatter()
            let fractional = ISO8601DateFormatter()
            fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            date = plain.date(from: text) ?? fractional.date(from: text)
            if date == nil { return oneLine(text, limit: 60) }
        }
        guard let date else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "fr_FR")
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        formatter.dateFormat = "dd/MM/yyyy 'à' HH:mm:ss 'UTC'"
        return formatter.string(from: date)
    }
}
