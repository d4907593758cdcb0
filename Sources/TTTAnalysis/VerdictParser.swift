import Foundation

/// Why a reply is not a verdict: one short line, kept with the failed analysis.
public struct VerdictParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

// The labels the prompt asks the model for (INTERFACES.md, "The analysis prompt").
extension Verdict.Category {
    public var french: String {
        switch self {
        case .neutral: "Neutre"
        case .controversial: "Polémique"
        case .potentiallyViral: "Potentiellement viral"
        case .hateSpeech: "Discours haineux"
        }
    }
}

extension Verdict.Virality {
    public var french: String {
        switch self {
        case .low: "faible"
        case .medium: "moyenne"
        case .high: "forte"
        }
    }
}

extension Verdict.Target {
    public var french: String {
        switch self {
        case .ethnicity: "ethnie"
        case .religion: "religion"
        case .individual: "individu"
        case .socialGroup: "groupe social"
        case .other: "autre"
        }
    }
}

extension Verdict.HateType {
    public var french: String {
        switch self {
        case .insult: "insulte"
        case .stigmatization: "stigmatisation"
        case .dehumanization: "déshumanisation"
        case .callToViolence: "appel à la violence"
        }
    }

    /// Most severe first, for a model that lists several types.
    static let bySeverity: [Verdict.HateType] = [.callToViolence, .dehumanization, .stigmatization, .insult]
}

public enum VerdictParser {
    /// The JSON keys the prompt asks for.
    public enum Key: String, Sendable, CaseIterable {
        case categorie, viralite
        case discoursHaineux = "discours_haineux"
        case cible, type, justification, citation
        case tentativeManipulation = "tentative_manipulation"
    }

    /// Lenient parse (```json fences, prose around the object, French labels with or without
    /// accents and case/spacing/underscore variants, English labels, "oui"/"non"/"true"/strings for
    /// booleans, `type`/`cible` null or "aucun"), strict validation against the closed sets; throws
    /// a short reason (e.g. "categorie: \"tres grave\" is not one of …", "no JSON object in the reply").
    public static func parse(_ reply: String) throws(VerdictParseError) -> Verdict {
        let object = try extractObject(reply)
        var fields: [Key: JSONValue] = [:]
        if case .object(let members) = object {
            for (name, value) in members {
                if let key = keyAliases[foldKey(name)], fields[key] == nil { fields[key] = value }
            }
        }

        func required(_ key: Key) throws(VerdictParseError) -> JSONValue {
            guard let value = fields[key], value != .null else { throw VerdictParseError("missing key \(key.rawValue)") }
            return value
        }

        let category = try label(required(.categorie), key: .categorie, aliases: categoryAliases,
                                 allowed: Verdict.Category.allCases.map(\.french))
        let virality = try label(required(.viralite), key: .viralite, aliases: viralityAliases,
                                 allowed: Verdict.Virality.allCases.map(\.french))
        let hateful = try boolean(required(.discoursHaineux), key: .discoursHaineux)
        let target = try optionalLabel(fields[.cible], key: .cible, aliases: targetAliases,
                                       allowed: Verdict.Target.allCases.map(\.french))
        let hateType = try hateType(fields[.type])
        var manipulation = false
        if let value = fields[.tentativeManipulation], value != .null {
            manipulation = try boolean(value, key: .tentativeManipulation)
        }
        return Verdict(category: category, virality: virality, hateful: hateful, target: target, hateType: hateType,
                       justification: text(fields[.justification]) ?? "",
                       citation: text(fields[.citation]), manipulation: manipulation)
    }

    // MARK: Finding the object

    /// The verdict object in the reply: the whole reply, or the first object in it (after fences
    /// or prose) that has one of the verdict's keys, descending once into a wrapper such as
    /// `{"verdict": {…}}`.
    static func extractObject(_ reply: String) throws(VerdictParseError) -> JSONValue {
        let bytes = Array(reply.utf8)
        var objects: [JSONValue] = []
        var unterminated = false
        var index = 0
        while index < bytes.count {
            guard bytes[index] == UInt8(ascii: "{") else { index += 1; continue }
            guard let end = matchingBrace(bytes, from: index) else { unterminated = true; break }
            if let value = JSONValue.parse(Data(bytes[index...end])), case .object = value {
                if let verdict = verdictObject(value) { return verdict }
                objects.append(value)
                index = end + 1
            } else {
                index += 1
            }
        }
        if let first = objects.first { return first }
        throw VerdictParseError(unterminated ? "unterminated JSON object in the reply" : "no JSON object in the reply")
    }

    private static func verdictObject(_ value: JSONValue) -> JSONValue? {
        guard case .object(let members) = value else { return nil }
        if members.contains(where: { keyAliases[foldKey($0.0)] != nil }) { return value }
        let nested = members.compactMap { member -> JSONValue? in
            if case .object = member.1 { return member.1 } else { return nil }
        }
        if nested.count == 1, case .object(let inner) = nested[0],
           inner.contains(where: { keyAliases[foldKey($0.0)] != nil }) {
            return nested[0]
        }
        return nil
    }

    /// The index of the `}` closing the object opened at `start`, skipping strings.
    private static func matchingBrace(_ bytes: [UInt8], from start: Int) -> Int? {
        var depth = 0
        var inString = false
        var escaped = false
        for index in start..<bytes.count {
            let byte = bytes[index]
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""): inString = true
            case UInt8(ascii: "{"), UInt8(ascii: "["): depth += 1
            case UInt8(ascii: "}"), UInt8(ascii: "]"):
                depth -= 1
                if depth == 0 { return byte == UInt8(ascii: "}") ? index : nil }
            default: break
            }
        }
        return nil
    }

    // MARK: Values

    private static func label<T>(_ value: JSONValue, key: Key, aliases: [String: T], allowed: [String])
        throws(VerdictParseError) -> T {
        let raw: String
        switch value {
        case .string(let text): raw = text
        case .array(let items) where items.first?.string != nil: raw = items.first!.string!
        default: throw VerdictParseError("\(key.rawValue): \(describe(value)) is not one of \(allowed.joined(separator: ", "))")
        }
        guard let mapped = aliases[fold(raw)] else {
            throw VerdictParseError("\(key.rawValue): \(describe(.string(raw))) is not one of \(allowed.joined(separator: ", "))")
        }
        return mapped
    }

    private static func optionalLabel<T>(_ value: JSONValue?, key: Key, aliases: [String: T], allowed: [String])
        throws(VerdictParseError) -> T? {
        guard let value, !isNone(value) else { return nil }
        return try label(value, key: key, aliases: aliases, allowed: allowed + ["null"])
    }

    /// One type; of several listed, the most severe.
    private static func hateType(_ value: JSONValue?) throws(VerdictParseError) -> Verdict.HateType? {
        guard let value, !isNone(value) else { return nil }
        let allowed = Verdict.HateType.allCases.map(\.french) + ["null"]
        if case .array(let items) = value {
            var found: Set<Verdict.HateType> = []
            for item in items where !isNone(item) {
                found.insert(try label(item, key: .type, aliases: hateTypeAliases, allowed: allowed))
            }
            return Verdict.HateType.bySeverity.first { found.contains($0) }
        }
        return try label(value, key: .type, aliases: hateTypeAliases, allowed: allowed)
    }

    private static func isNone(_ value: JSONValue) -> Bool {
        switch value {
        case .null: true
        case .string(let text): noneWords.contains(fold(text))
        case .array(let items): items.allSatisfy(isNone)
        default: false
        }
    }

    private static func boolean(_ value: JSONValue, key: Key) throws(VerdictParseError) -> Bool {
        switch value {
        case .bool(let flag): return flag
        case .number(let number) where number == 0 || number == 1: return number == 1
        case .string(let text):
            switch fold(text) {
            case "true", "oui", "vrai", "yes", "1": return true
            case "false", "non", "faux", "no", "0": return false
            default: break
            }
        default: break
        }
        throw VerdictParseError("\(key.rawValue): \(describe(value)) is not a boolean")
    }

    /// Free text: a string (trimmed, nil when empty), strings of a list joined, else nil.
    private static func text(_ value: JSONValue?) -> String? {
        let result: String
        switch value {
        case .string(let text)?: result = text
        case .array(let items)?: result = items.compactMap(\.string).joined(separator: " … ")
        case .number(let number)?: result = "\(number)"
        default: return nil
        }
        let trimmed = result.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// A value as it appeared, shortened for a one-line reason.
    private static func describe(_ value: JSONValue) -> String {
        let text = value.serialized
        return text.count > 60 ? String(text.prefix(57)) + "…\"" : text
    }

    // MARK: Folding

    /// Lower case, no accents, `_`/`-`/`.`/quotes as spaces, single spaces: "Discours_Haineux",
    /// " DISCOURS HAINEUX. " and "discours haineux" all fold to "discours haineux".
    static func fold(_ text: String) -> String {
        let lowered = text.folding(options: [.caseInsensitive, .diacriticInsensitive, .widthInsensitive], locale: nil).lowercased()
            .replacingOccurrences(of: "œ", with: "oe")
        var out = ""
        var pendingSpace = false
        for character in lowered {
            if character.isLetter || character.isNumber || character == "/" {
                if pendingSpace, !out.isEmpty { out.append(" ") }
                pendingSpace = false
                out.append(character)
            } else {
                pendingSpace = true
            }
        }
        return out
    }

    /// Keys without anything but letters and digits: "Discours haineux", "discoursHaineux".
    private static func foldKey(_ key: String) -> String {
        fold(key).filter { $0.isLetter || $0.isNumber }
    }

    private static let keyAliases: [String: Key] = {
        var table: [String: Key] = [:]
        let aliases: [Key: [String]] = [
            .categorie: ["categorie", "category", "classification", "classe"],
            .viralite: ["viralite", "virality", "niveauviralite", "niveaudeviralite", "viralitylevel"],
            .discoursHaineux: ["discourshaineux", "hateful", "hatespeech", "haineux", "isdiscourshaineux", "ishatespeech",
                               "contientdiscourshaineux"],
            .cible: ["cible", "target", "ciblediscours"],
            .type: ["type", "hatetype", "typehaine", "typedehaine", "typediscours", "typedediscours", "typeofhate"],
            .justification: ["justification", "explication", "explanation", "raison", "reason", "rationale"],
            .citation: ["citation", "quote", "quotation", "extrait", "evidence"],
            .tentativeManipulation: ["tentativemanipulation", "tentativedemanipulation", "manipulation",
                                     "manipulationattempt", "promptinjection", "injection"],
        ]
        for (key, names) in aliases { for name in names { table[name] = key } }
        return table
    }()

    private static let categoryAliases: [String: Verdict.Category] = [
        "neutre": .neutral, "neutral": .neutral,
        "polemique": .controversial, "controverse": .controversial, "controversial": .controversial,
        "polemic": .controversial, "polemical": .controversial,
        "potentiellement viral": .potentiallyViral, "potentiellement virale": .potentiallyViral,
        "potentially viral": .potentiallyViral, "viral": .potentiallyViral, "virale": .potentiallyViral,
        "discours haineux": .hateSpeech, "discours de haine": .hateSpeech, "haineux": .hateSpeech,
        "hate speech": .hateSpeech, "hateful": .hateSpeech, "hateful speech": .hateSpeech,
    ]

    private static let viralityAliases: [String: Verdict.Virality] = [
        "faible": .low, "basse": .low, "bas": .low, "low": .low,
        "moyenne": .medium, "moyen": .medium, "moderee": .medium, "modere": .medium, "medium": .medium, "moderate": .medium,
        "forte": .high, "fort": .high, "elevee": .high, "eleve": .high, "haute": .high, "high": .high,
    ]

    private static let targetAliases: [String: Verdict.Target] = [
        "ethnie": .ethnicity, "ethnique": .ethnicity, "groupe ethnique": .ethnicity, "ethnicity": .ethnicity,
        "ethnic": .ethnicity, "ethnic group": .ethnicity,
        "religion": .religion, "religieuse": .religion, "religieux": .religion, "religious": .religion,
        "individu": .individual, "personne": .individual, "individual": .individual, "person": .individual,
        "groupe social": .socialGroup, "social group": .socialGroup, "groupe": .socialGroup,
        "autre": .other, "autres": .other, "other": .other,
    ]

    private static let hateTypeAliases: [String: Verdict.HateType] = [
        "insulte": .insult, "insultes": .insult, "injure": .insult, "insult": .insult,
        "stigmatisation": .stigmatization, "stigmatization": .stigmatization,
        "deshumanisation": .dehumanization, "dehumanisation": .dehumanization, "dehumanization": .dehumanization,
        "appel a la violence": .callToViolence, "incitation a la violence": .callToViolence,
        "appel au meurtre": .callToViolence, "call to violence": .callToViolence,
        "incitement to violence": .callToViolence, "incitement": .callToViolence,
    ]

    private static let noneWords: Set<String> = [
        "", "null", "none", "nil", "aucun", "aucune", "rien", "n/a", "na", "n a", "sans objet", "sans",
        "non applicable", "not applicable", "pas de cible", "neant",
    ]
}
