import Foundation
import Testing
@testable import TTTConfig

/// A fresh directory under the system's temporary directory, removed when released.
final class TemporaryDirectory {
    let path: String

    init() throws {
        var template = Array((NSTemporaryDirectory() + "/tttconfig-XXXXXX").utf8CString)
        guard let created = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        path = String(cString: created)
    }

    /// Writes `contents` to `name` in the directory and returns the file's path.
    @discardableResult
    func write(_ name: String, _ contents: String) throws -> String {
        let file = path + "/" + name
        try contents.write(toFile: file, atomically: true, encoding: .utf8)
        return file
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// The repository's root, for the example configurations.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().path

/// Loads `yaml` written to a temporary file (its path in the result), with `environment` only.
func load(_ yaml: String, environment: [String: String] = [:]) async throws
    -> (path: String, result: Result<TTTConfiguration, ConfigProblems>) {
    let directory = try TemporaryDirectory()
    let path = try directory.write("tttd.yaml", yaml)
    do {
        return (path, .success(try await ConfigLoader.load(path: path, environment: environment)))
    } catch {
        return (path, .failure(error))
    }
}

/// The problems loading `yaml` gives (recording an issue when it loads fine).
func problems(_ yaml: String, environment: [String: String] = [:],
              sourceLocation: SourceLocation = #_sourceLocation) async throws -> (path: String, problems: [ConfigProblem]) {
    let (path, result) = try await load(yaml, environment: environment)
    switch result {
    case .success:
        Issue.record("expected problems, the configuration loaded", sourceLocation: sourceLocation)
        return (path, [])
    case .failure(let error):
        return (path, error.problems)
    }
}

let minimalYAML = "database:\n  url: postgresql://tttd@/tttd?host=/run/postgresql\n"
