import Configuration

/// Reads the non-secret keys through one ConfigReader (the environment over the file) and turns
/// each bad value into a problem that names where the value came from.
struct ValueReader {
    enum Origin { case file, environment }

    let reader: ConfigReader
    /// The `TTTD_*` variables, to tell which source gave a value (the reader merges them).
    let environment: [String: String]
    let path: String
    let lines: [String: Int]
    var problems: ProblemCollector

    init(reader: ConfigReader, environment: [String: String], path: String, lines: [String: Int],
         problems: ProblemCollector) {
        self.reader = reader
        self.environment = environment
        self.path = path
        self.lines = lines
        self.problems = problems
    }

    func origin(of key: String) -> Origin {
        environment[KeyCatalogue.environmentName(key)] != nil ? .environment : .file
    }

    /// Records a problem about `key`, named the way its source names it (`detection.interval` in
    /// the file, `TTTD_DETECTION_INTERVAL` in the environment).
    mutating func report(_ key: String, _ message: String, origin: Origin? = nil, line: Int? = nil) {
        let index = KeyCatalogue.index(of: key)
        switch origin ?? self.origin(of: key) {
        case .environment:
            let name = KeyCatalogue.environmentName(key)
            problems.add(ConfigProblem(source: "environment", key: name, message: message),
                         rank: .init(group: 2, index: index))
        case .file:
            problems.add(ConfigProblem(source: path, key: key, message: message),
                         rank: .init(group: 1, line: line ?? lines[key] ?? Int.max, index: index))
        }
    }

    private static func configKey(_ key: String) -> ConfigKey {
        ConfigKey(key.split(separator: ".").map(String.init))
    }

    func text(_ key: String) -> String? {
        reader.string(forKey: Self.configKey(key))
    }

    func items(_ key: String) -> [String]? {
        reader.stringArray(forKey: Self.configKey(key)).map { $0.filter { !$0.isEmpty } }
    }

    /// The value of `key` parsed, or `defaultValue` when absent (or refused, with a problem).
    mutating func value<T>(_ key: String, default defaultValue: T, _ parse: (String) throws(Invalid) -> T) -> T {
        guard let text = text(key) else { return defaultValue }
        do {
            return try parse(text)
        } catch {
            report(key, error.message)
            return defaultValue
        }
    }

    /// Like `value`, for keys that are off when absent or empty.
    mutating func optional<T>(_ key: String, _ parse: (String) throws(Invalid) -> T) -> T? {
        guard let text = text(key), !text.trimmingWhitespace().isEmpty else { return nil }
        do {
            return try parse(text)
        } catch {
            report(key, error.message)
            return nil
        }
    }

    /// A list, each item parsed; one problem per refused item.
    mutating func list<T>(_ key: String, default defaultValue: [T], _ parse: (String) throws(Invalid) -> T) -> [T] {
        guard let items = items(key) else { return defaultValue }
        var values: [T] = []
        for item in items {
            do {
                values.append(try parse(item))
            } catch {
                report(key, error.message)
            }
        }
        return values
    }
}
