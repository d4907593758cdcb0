import Crypto
import Foundation
import Yams

/// What is wrong with a prompt template file, naming the file.
public struct PromptError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "prompt template \(path): \(problem)" }
}

/// The operator-editable template (YAML): `system` and `user` strings; `user` must contain
/// {{transcript}}, {{open}} and {{close}} (the random delimiters), and may contain {{context}}
/// (the previous window, marked as context, not to judge). Optional `no_context`: what
/// {{context}} becomes for the first window of a live (default "(aucun)").
///
/// Placeholders may be written with spaces inside the braces (`{{ transcript }}`); any other
/// `{{…}}` is an error, so that a typo is caught by `tttd check-config` rather than sent to the
/// model. `system` may use {{open}} and {{close}} (it then changes with every request, which
/// defeats the providers' prompt caching: the default template describes the delimiters instead).
public struct PromptTemplate: Sendable {
    public enum Placeholder: String, Sendable, CaseIterable {
        case transcript, context, open, close
    }

    /// Hex of the file's bytes: each analysis records the prompt it used.
    public let sha256: String
    public let path: String
    /// The templates as written in the file.
    public let system: String
    public let user: String
    public let noContext: String

    private let systemParts: [Part]
    private let userParts: [Part]

    fileprivate enum Part: Sendable {
        case text(String)
        case placeholder(Placeholder)
    }

    public static func load(path: String) throws(PromptError) -> PromptTemplate {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            let reason = (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
            throw PromptError(path: path, problem: "cannot read the file (\(Self.readProblem(path) ?? reason))")
        }
        return try PromptTemplate(data: data, path: path)
    }

    /// A template from the bytes of a file (`path` names it in errors and in analyses).
    public init(data: Data, path: String) throws(PromptError) {
        func fail(_ problem: String) -> PromptError { PromptError(path: path, problem: problem) }
        guard let text = String(data: data, encoding: .utf8) else { throw fail("not UTF-8 text") }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            let first = "\(error)".split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
            // `user: {{open}}…` unquoted reads as a YAML flow mapping.
            let unquoted = text.split(whereSeparator: \.isNewline).contains { $0.contains(/^\s*\w+:\s*\{\{/) }
            throw fail("not YAML: \(first)" + (unquoted ? " (a value that starts with {{ must be quoted, or written as a block after `key: |`)" : ""))
        }
        guard let mapping = root?.mapping else {
            throw fail("not a YAML mapping with the keys system and user")
        }
        func string(_ key: String, required: Bool) throws(PromptError) -> String? {
            guard let node = mapping[key] else {
                if required { throw fail("missing key \(key)") }
                return nil
            }
            guard node.scalar != nil, let value = node.string else { throw fail("\(key) is not a string (quote it, or write it as a block after `\(key): |`)") }
            let trimmed = value.trimmingCharacters(in: .whitespacesAndNewlines)
            if required, trimmed.isEmpty { throw fail("\(key) is empty") }
            return trimmed
        }
        let system = try string("system", required: true)!
        let user = try string("user", required: true)!
        let noContext = try string("no_context", required: false) ?? "(aucun)"

        let systemParts = try Self.split(system, key: "system", fail: fail)
        let userParts = try Self.split(user, key: "user", fail: fail)
        for placeholder in [Placeholder.transcript, .context] where systemParts.contains(placeholder) {
            throw fail("{{\(placeholder.rawValue)}} belongs in user, not in system")
        }
        for placeholder in [Placeholder.transcript, .open, .close] where !userParts.contains(placeholder) {
            throw fail("missing placeholder {{\(placeholder.rawValue)}} in user")
        }
        // The speaker's words (and the previous window's) must sit between the delimiters.
        let markers = userParts.compactMap { part -> Placeholder? in
            if case .placeholder(let placeholder) = part { return placeholder } else { return nil }
        }
        for (index, marker) in markers.enumerated() where marker == .transcript || marker == .context {
            let before = markers[..<index].last { $0 == .open || $0 == .close }
            let after = markers[(index + 1)...].first { $0 == .open || $0 == .close }
            guard before == .open, after == .close else {
                throw fail("{{\(marker.rawValue)}} in user is not between {{open}} and {{close}}")
            }
        }

        self.sha256 = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        self.path = path
        self.system = system
        self.user = user
        self.noContext = noContext
        self.systemParts = systemParts
        self.userParts = userParts
    }

    /// Renders with fresh random delimiters (`«TXT-<16 random hex>»` and `«/TXT-<same hex>»`) that
    /// the speaker cannot guess or close. Placeholders are replaced in one pass: a transcript that
    /// says "{{close}}" stays those words.
    public func render(transcript: String, context: String?) -> RenderedPrompt {
        let context = context.flatMap { $0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? nil : $0 }
        var nonce: String
        repeat {
            nonce = Self.randomHex()
        } while transcript.contains(nonce) || context?.contains(nonce) == true
        let open = "«TXT-\(nonce)»"
        let close = "«/TXT-\(nonce)»"
        func fill(_ parts: [Part]) -> String {
            var out = ""
            for part in parts {
                switch part {
                case .text(let text): out += text
                case .placeholder(.transcript): out += transcript
                case .placeholder(.context): out += context ?? noContext
                case .placeholder(.open): out += open
                case .placeholder(.close): out += close
                }
            }
            return out
        }
        return RenderedPrompt(system: fill(systemParts), user: fill(userParts), open: open, close: close)
    }

    // MARK: Parsing

    private static func split(_ template: String, key: String, fail: (String) -> PromptError) throws(PromptError) -> [Part] {
        var parts: [Part] = []
        var rest = Substring(template)
        while let start = rest.range(of: "{{") {
            guard let end = rest.range(of: "}}", range: start.upperBound..<rest.endIndex) else {
                throw fail("unclosed {{ in \(key)")
            }
            let name = rest[start.upperBound..<end.lowerBound].trimmingCharacters(in: .whitespaces)
            guard let placeholder = Placeholder(rawValue: name) else {
                let known = Placeholder.allCases.map { "{{\($0.rawValue)}}" }.joined(separator: ", ")
                throw fail("unknown placeholder {{\(name)}} in \(key) (known: \(known))")
            }
            if start.lowerBound > rest.startIndex { parts.append(.text(String(rest[..<start.lowerBound]))) }
            parts.append(.placeholder(placeholder))
            rest = rest[end.upperBound...]
        }
        if !rest.isEmpty { parts.append(.text(String(rest))) }
        return parts
    }

    private static func randomHex() -> String {
        var generator = SystemRandomNumberGenerator()
        let hex = String(generator.next() as UInt64, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    private static func readProblem(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) { return "no such file" }
        if isDirectory.boolValue { return "a directory" }
        if !FileManager.default.isReadableFile(atPath: path) { return "permission denied" }
        return nil
    }
}

private extension [PromptTemplate.Part] {
    func contains(_ placeholder: PromptTemplate.Placeholder) -> Bool {
        contains { if case .placeholder(let found) = $0 { found == placeholder } else { false } }
    }
}

/// A prompt ready to send, with the delimiters it used.
public struct RenderedPrompt: Sendable, Equatable {
    public var system: String
    public var user: String
    public var open: String
    public var close: String

    public init(system: String, user: String, open: String, close: String) {
        self.system = system
        self.user = user
        self.open = open
        self.close = close
    }
}
