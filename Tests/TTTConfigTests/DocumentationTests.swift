import Foundation
import Testing
@testable import TTTConfig

/// The documentation of the configuration follows the code: every key the loader knows
/// (KeyCatalogue) is in docs/configuration.md with its true default and whether a change needs a
/// restart, in man/tttd.yaml.5, and in the example etc/tttd/tttd.yaml. A key added to the code
/// without its documentation fails here, named.
@Suite struct DocumentationTests {
    /// One row of a key table in configuration.md: `| key | meaning | value | default | change |`.
    struct Row {
        var defaultValue: String
        var change: String
    }

    /// How each key is named in the documentation (the webhook secrets are a family).
    static let documentedKeys: [(path: String, isSecret: Bool)] =
        KeyCatalogue.keys.map { ($0.path, $0.isSecret) } + [(KeyCatalogue.webhookSecretPrefix + "<name>", true)]

    static let backquote = CharacterSet(charactersIn: "`")

    static func text(_ relativePath: String) throws -> String {
        try String(contentsOfFile: repositoryRoot + "/" + relativePath, encoding: .utf8)
    }

    /// The key rows of configuration.md, by key.
    static func referenceRows() throws -> [String: Row] {
        var rows: [String: Row] = [:]
        for line in try text("docs/configuration.md").split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).dropFirst().dropLast()
                .map { $0.trimmingWhitespace() }
            guard cells.count == 5 else { continue }
            rows[cells[0].trimmingCharacters(in: Self.backquote)] = Row(defaultValue: cells[3], change: cells[4])
        }
        return rows
    }

    @Test func theReferenceHasEveryKey() throws {
        let rows = try Self.referenceRows()
        for key in Self.documentedKeys {
            #expect(rows[key.path] != nil, "\(key.path) has no row in docs/configuration.md")
        }
        let text = try Self.text("docs/configuration.md")
        for field in KeyCatalogue.webhookFields {
            #expect(text.contains("| `\(field.path)` |"), "the webhook field \(field.path) is not in docs/configuration.md")
        }
    }

    /// What Changes.swift sets up once at start, and every secret (`groq_api_key` feeds the two
    /// API keys, which are restart-only), needs a restart; the rest applies on SIGHUP.
    @Test func theReferenceSaysWhichKeysNeedARestart() throws {
        let rows = try Self.referenceRows()
        for key in Self.documentedKeys {
            guard let row = rows[key.path] else { continue }  // reported by theReferenceHasEveryKey
            let restart = key.isSecret || TTTConfiguration.restartOnlyKeys.contains(key.path)
                || TTTConfiguration.restartOnlyPrefixes.contains { key.path.hasPrefix($0) }
            #expect(row.change == (restart ? "restart" : "reload"),
                    "docs/configuration.md: \(key.path) says \(row.change), the daemon does \(restart ? "restart" : "reload")")
        }
    }

    /// Setting a key to its documented default (through its TTTD_* variable) must change nothing.
    @Test func theReferenceDefaultsAreTheDefaults() async throws {
        let rows = try Self.referenceRows()
        let defaults = try await load(minimalYAML).result.get()
        for key in KeyCatalogue.keys {
            guard let documented = rows[key.path]?.defaultValue, documented != "none", documented != "required" else { continue }
            var value = documented.trimmingCharacters(in: Self.backquote)
            if key.kind == .list, value.hasPrefix("["), value.hasSuffix("]") {
                value = String(value.dropFirst().dropLast())  // the environment's lists are comma-separated
            }
            let result = try await load(minimalYAML, environment: [KeyCatalogue.environmentName(key.path): value]).result
            switch result {
            case .success(let configuration):
                let unchanged = configuration == defaults
                #expect(unchanged, "docs/configuration.md: \(key.path) is not \(documented) by default")
            case .failure(let problems):
                Issue.record("docs/configuration.md: the default of \(key.path), \(documented), is refused: \(problems)")
            }
        }
    }

    @Test func theManualPageHasEveryKey() throws {
        let page = try Self.text("man/tttd.yaml.5")
        for key in Self.documentedKeys {
            // roff escapes "-" and "_" stays as is; keys are written in bold (\fB…\fR).
            let written = key.path.replacingOccurrences(of: "-", with: "\\-")
            #expect(page.contains("\\fB\(written)\\fR"), "\(key.path) is not in man/tttd.yaml.5")
        }
    }

    /// The example loads as the defaults (LoadTests), so each ordinary key is there for real, at its
    /// default; secrets must never be in a production file, so the example names them in comments.
    @Test func theExampleHasEveryKey() throws {
        let text = try Self.text("etc/tttd/tttd.yaml")
        let parsed = try YAMLDocument.parse(text).get()
        let comments = text.split(separator: "\n").filter { $0.trimmingWhitespace().hasPrefix("#") }.joined(separator: "\n")
        for key in Self.documentedKeys {
            if key.isSecret {
                let name = String(key.path.dropFirst("secrets.".count)).replacingOccurrences(of: "<name>", with: "")
                #expect(comments.contains(name), "the secret \(key.path) is not explained in etc/tttd/tttd.yaml")
            } else {
                #expect(parsed.lines[key.path] != nil, "\(key.path) is not in etc/tttd/tttd.yaml")
            }
        }
    }
}
