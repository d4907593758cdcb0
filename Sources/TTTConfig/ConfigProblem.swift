/// One thing wrong with the configuration, named precisely enough for an operator to fix it.
public struct ConfigProblem: Sendable, Equatable, Hashable, CustomStringConvertible {
    /// The file path, `"environment"` for `TTTD_*` variables, or `"credentials"` for the secrets directory.
    public var source: String
    /// The dotted key (`detection.interval`), or the variable name (`TTTD_DETECTION_INTERVAL`);
    /// empty when the problem concerns the whole source (unreadable file, YAML syntax).
    public var key: String
    /// What is wrong. Never contains the value of a secret.
    public var message: String

    public init(source: String, key: String, message: String) {
        self.source = source
        self.key = key
        self.message = message
    }

    public var description: String {
        key.isEmpty ? "\(source): \(message)" : "\(source): \(key): \(message)"
    }
}

/// Every problem found in one load, in the order of the keys they concern.
public struct ConfigProblems: Error, Sendable, Equatable, CustomStringConvertible {
    public var problems: [ConfigProblem]

    public init(problems: [ConfigProblem]) {
        self.problems = problems
    }

    /// One problem per line, ready for `tttd check-config`.
    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}

/// Collects problems as the loader finds them, then sorts them into the order the operator reads
/// the configuration: the file top to bottom, then the environment, then the credentials.
struct ProblemCollector {
    /// Where a problem sorts: `group` 0 the file as a whole, 1 a key of the file, 2 the
    /// environment, 3 the credentials; then the line in the file (keys without one last), then the
    /// key's place in the catalogue; then the order in which they were found.
    struct Rank: Comparable {
        var group: Int
        var line = Int.max
        var index = 0

        static func < (a: Rank, b: Rank) -> Bool {
            (a.group, a.line, a.index) < (b.group, b.line, b.index)
        }
    }

    private var entries: [(problem: ConfigProblem, rank: Rank, sequence: Int)] = []
    private var seen: Set<ConfigProblem> = []

    var isEmpty: Bool { entries.isEmpty }

    mutating func add(_ problem: ConfigProblem, rank: Rank) {
        guard seen.insert(problem).inserted else { return }
        entries.append((problem, rank, entries.count))
    }

    var sorted: [ConfigProblem] {
        entries.sorted { ($0.rank, $0.sequence) < ($1.rank, $1.sequence) }.map(\.problem)
    }
}
