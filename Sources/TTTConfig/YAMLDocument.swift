import Configuration
import Yams

/// A problem found in YAML text, before the loader says which source it came from.
struct LocatedProblem: Error {
    var key: String
    var message: String
    var line: Int?
}

/// One item of `alerts.webhooks` as written, not yet validated.
struct RawWebhook {
    var key: String  // `alerts.webhooks[0]` (or `TTTD_ALERTS_WEBHOOKS[0]`): how problems name it
    var line: Int?
    /// The line of each field, and of the item's last one (where a missing field is reported).
    var fieldLines: [String: Int] = [:]
    var lastLine: Int?
    var name: String?
    var url: String?
    var secret: String?
    var events: [String]?
}

/// The configuration file checked against the key catalogue and flattened for swift-configuration.
///
/// swift-configuration's own YAMLSnapshot cannot be used for this file: it rejects lists of
/// mappings (`alerts.webhooks`), keeps no line numbers and cannot tell which keys are unknown. So
/// the file is walked here with Yams, and its values go to an InMemoryProvider under the same keys.
struct YAMLDocument {
    /// Scalars as `.string`, lists as `.stringArray`: every value is validated by the loader, the
    /// same way whether it came from the file or from the environment.
    var values: [AbsoluteConfigKey: ConfigValue] = [:]
    /// The line of each key present (sections included), to sort problems in file order.
    var lines: [String: Int] = [:]
    var webhooks: [RawWebhook]?
    var problems: [LocatedProblem] = []

    init() {}

    /// Reads `text`; a YAML syntax error is a single problem naming the line.
    static func parse(_ text: String) -> Result<YAMLDocument, LocatedProblem> {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            return .failure(syntaxProblem(error))
        }
        var document = YAMLDocument()
        guard let root, root.null == nil else { return .success(document) }  // an empty file
        guard let mapping = root.mapping else {
            return .failure(LocatedProblem(
                key: "", message: "the file must be a mapping of keys (section: key: value), not \(describe(root))",
                line: root.mark?.line))
        }
        document.walk(mapping, prefix: "")
        return .success(document)
    }

    /// The message for a YAML error: the line, the column and libyaml's words, never the quoted
    /// source line (it might hold a secret).
    static func syntaxProblem(_ error: any Error) -> LocatedProblem {
        switch error as? YamlError {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let during = context.map { " (\($0.text) at line \($0.mark.line))" } ?? ""
            return LocatedProblem(
                key: "", message: "YAML syntax error at line \(mark.line), column \(mark.column): \(problem)\(during)",
                line: mark.line)
        case .duplicatedKeysInMapping(let duplicates, let context):
            return LocatedProblem(
                key: "", message: "YAML error in the mapping at line \(context.mark.line): duplicate key "
                    + duplicates.sorted().joined(separator: ", "),
                line: context.mark.line)
        case .reader(let problem, _, _, _):
            return LocatedProblem(key: "", message: "not readable as YAML text: \(problem)", line: nil)
        case .dataCouldNotBeDecoded:
            return LocatedProblem(key: "", message: "not UTF-8 text", line: nil)
        default:
            return LocatedProblem(key: "", message: "not readable as YAML", line: nil)
        }
    }

    private mutating func walk(_ mapping: Node.Mapping, prefix: String) {
        for (keyNode, valueNode) in mapping {
            let line = keyNode.mark?.line
            guard let name = keyNode.scalar?.string, !name.isEmpty else {
                problems.append(LocatedProblem(key: prefix, message: "a key must be a name", line: line))
                continue
            }
            let path = prefix.isEmpty ? name : prefix + "." + name
            if KeyCatalogue.sections.contains(path) {
                lines[path] = line
                if valueNode.null != nil { continue }  // an empty section: every key at its default
                guard let section = valueNode.mapping else {
                    problems.append(LocatedProblem(
                        key: path, message: "must be a section of keys, not \(Self.describe(valueNode))", line: line))
                    continue
                }
                walk(section, prefix: path)
            } else if let key = KeyCatalogue.key(path) {
                lines[path] = line
                store(valueNode, key: key, line: line)
            } else {
                let suggestion = KeyCatalogue.suggestion(for: path, among: KeyCatalogue.fileCandidates)
                problems.append(LocatedProblem(key: path, message: unknown(suggestion), line: line))
            }
        }
    }

    private mutating func store(_ node: Node, key: KeyCatalogue.Key, line: Int?) {
        if node.null != nil { return }  // `key:` with no value: the default applies
        let configKey = AbsoluteConfigKey(key.path.split(separator: ".").map(String.init))
        switch key.kind {
        case .scalar:
            guard let scalar = node.scalar else {
                problems.append(LocatedProblem(
                    key: key.path, message: "must be a single value, not \(Self.describe(node))", line: line))
                return
            }
            values[configKey] = ConfigValue(.string(scalar.string), isSecret: key.isSecret)
        case .list:
            switch Self.stringList(node) {
            case .success(let items): values[configKey] = ConfigValue(.stringArray(items), isSecret: key.isSecret)
            case .failure(let message): problems.append(LocatedProblem(key: key.path, message: message.message, line: line))
            }
        case .webhooks:
            let decoded = Self.webhooks(node, key: key.path, line: line)
            webhooks = decoded.webhooks
            problems += decoded.problems
        }
    }

    /// A YAML sequence of single values, or one value holding a comma-separated list (as the
    /// environment gives lists).
    static func stringList(_ node: Node) -> Result<[String], Invalid> {
        if let scalar = node.scalar { return .success(commaSeparated(scalar.string)) }
        guard let sequence = node.sequence else {
            return .failure(Invalid("must be a list, not \(describe(node))"))
        }
        var items: [String] = []
        for (index, item) in sequence.enumerated() {
            guard let scalar = item.scalar, item.null == nil else {
                return .failure(Invalid("item \(index + 1) must be a single value, not \(describe(item))"))
            }
            items.append(scalar.string)
        }
        return .success(items)
    }

    /// Decodes `alerts.webhooks` from the file or from `TTTD_ALERTS_WEBHOOKS` (a YAML flow
    /// sequence); problems are named `<key>[index].field`.
    static func webhooks(_ node: Node, key: String, line: Int?) -> (webhooks: [RawWebhook], problems: [LocatedProblem]) {
        guard let sequence = node.sequence else {
            return ([], [LocatedProblem(
                key: key, message: "must be a list of webhooks (- name: …, url: …), not \(describe(node))", line: line)])
        }
        var webhooks: [RawWebhook] = []
        var problems: [LocatedProblem] = []
        for (index, item) in sequence.enumerated() {
            let itemKey = "\(key)[\(index)]"
            let itemLine = item.mark?.line ?? line
            guard let mapping = item.mapping else {
                problems.append(LocatedProblem(
                    key: itemKey, message: "must be a webhook (name: …, url: …), not \(describe(item))", line: itemLine))
                continue
            }
            var webhook = RawWebhook(key: itemKey, line: itemLine)
            for (fieldNode, value) in mapping {
                let fieldLine = fieldNode.mark?.line ?? itemLine
                let field = fieldNode.scalar?.string ?? ""
                let fieldKey = "\(itemKey).\(field)"
                webhook.fieldLines[field] = fieldLine
                webhook.lastLine = max(webhook.lastLine ?? 0, fieldLine ?? 0)
                guard let spec = KeyCatalogue.webhookFields.first(where: { $0.path == field }) else {
                    let names = KeyCatalogue.webhookFields.map(\.path)
                    let suggestion = KeyCatalogue.suggestion(for: field, among: names).map { "\(itemKey).\($0)" }
                    problems.append(LocatedProblem(key: fieldKey, message: unknown(suggestion), line: fieldLine))
                    continue
                }
                if value.null != nil { continue }
                if spec.kind == .list {
                    switch stringList(value) {
                    case .success(let items): webhook.events = items
                    case .failure(let message):
                        problems.append(LocatedProblem(key: fieldKey, message: message.message, line: fieldLine))
                    }
                    continue
                }
                guard let text = value.scalar?.string else {
                    problems.append(LocatedProblem(
                        key: fieldKey, message: "must be a single value, not \(describe(value))", line: fieldLine))
                    continue
                }
                switch field {
                case "name": webhook.name = text
                case "url": webhook.url = text
                default: webhook.secret = text
                }
            }
            webhooks.append(webhook)
        }
        return (webhooks, problems)
    }

    static func describe(_ node: Node) -> String {
        switch node {
        case .scalar: "a single value"
        case .mapping: "a section of keys"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }
}

/// `unknown key (did you mean detection.interval?)`, or just `unknown key` when nothing is close.
func unknown(_ suggestion: String?, what: String = "key") -> String {
    suggestion.map { "unknown \(what) (did you mean \($0)?)" } ?? "unknown \(what)"
}

/// `a, b,c` → `["a", "b", "c"]`; empty items are dropped, so an empty text is an empty list.
func commaSeparated(_ text: String) -> [String] {
    text.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
}
