import Foundation

/// One row of a scripted day: `username` goes live `start_s` seconds after tttsim starts, for
/// `duration_s` seconds, serving `audio` (silence when absent), looped unless `loop` is false.
public struct ScheduleEntry: Sendable, Equatable, Decodable {
    public var username: String
    public var start_s: Double
    public var duration_s: Double
    public var audio: String?
    public var title: String?
    public var loop: Bool?

    public init(username: String, start_s: Double, duration_s: Double, audio: String? = nil, title: String? = nil, loop: Bool? = nil) {
        self.username = username
        self.start_s = start_s
        self.duration_s = duration_s
        self.audio = audio
        self.title = title
        self.loop = loop
    }
}

public struct ScheduleError: Error, CustomStringConvertible {
    public let description: String
}

/// Reads a schedule: a JSON array of entries, or CSV with the header
/// `username,start_s,duration_s,audio` (`title` and `loop` columns are optional, in any order).
/// Relative audio paths are taken relative to the schedule file's folder.
public enum Schedule {
    public static func load(path: String) throws -> [ScheduleEntry] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ScheduleError(description: "\(path): cannot be read: \(error.localizedDescription)")
        }
        do {
            return try parse(text, relativeTo: URL(fileURLWithPath: path).deletingLastPathComponent().path)
        } catch let error as ScheduleError {
            throw ScheduleError(description: "\(path): \(error.description)")
        }
    }

    public static func parse(_ text: String, relativeTo directory: String? = nil) throws -> [ScheduleEntry] {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        var entries = trimmed.hasPrefix("[") ? try parseJSON(trimmed) : try parseCSV(trimmed)
        for index in entries.indices {
            let entry = entries[index]
            guard !SimState.key(entry.username).isEmpty else { throw ScheduleError(description: "entry \(index + 1): empty username") }
            guard entry.start_s >= 0, entry.duration_s > 0 else {
                throw ScheduleError(description: "entry \(index + 1): start_s must be ≥ 0 and duration_s > 0")
            }
            if let audio = entry.audio, let directory, !audio.hasPrefix("/") {
                entries[index].audio = URL(fileURLWithPath: directory).appendingPathComponent(audio).path
            }
        }
        return entries
    }

    private static func parseJSON(_ text: String) throws -> [ScheduleEntry] {
        do {
            return try JSONDecoder().decode([ScheduleEntry].self, from: Data(text.utf8))
        } catch {
            throw ScheduleError(description: "invalid JSON schedule: \(error)")
        }
    }

    private static func parseCSV(_ text: String) throws -> [ScheduleEntry] {
        let lines = text.split(whereSeparator: \.isNewline).map(String.init)
            .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.hasPrefix("#") }
        guard let header = lines.first else { return [] }
        let columns = splitCSVLine(header).map { $0.lowercased() }
        func column(_ name: String) -> Int? { columns.firstIndex(of: name) }
        guard let user = column("username"), let start = column("start_s"), let duration = column("duration_s") else {
            throw ScheduleError(description: "CSV header must name username,start_s,duration_s[,audio]")
        }
        return try lines.dropFirst().enumerated().map { offset, line in
            let fields = splitCSVLine(line)
            func field(_ index: Int?) -> String? {
                guard let index, index < fields.count, !fields[index].isEmpty else { return nil }
                return fields[index]
            }
            guard let username = field(user), let startValue = field(start).flatMap(Double.init),
                  let durationValue = field(duration).flatMap(Double.init)
            else { throw ScheduleError(description: "line \(offset + 2): needs username, numeric start_s and duration_s") }
            let loop = field(column("loop")).map { ["1", "true", "yes"].contains($0.lowercased()) }
            return ScheduleEntry(username: username, start_s: startValue, duration_s: durationValue,
                                 audio: field(column("audio")), title: field(column("title")), loop: loop)
        }
    }

    /// Comma-separated fields, with "double quotes" around fields that contain commas.
    static func splitCSVLine(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        var iterator = line.makeIterator()
        while let character = iterator.next() {
            switch character {
            case "\"" where quoted:
                var lookahead = iterator
                if lookahead.next() == "\"" {
                    current.append("\"")
                    iterator = lookahead
                } else {
                    quoted = false
                }
            case "\"" where current.isEmpty: quoted = true
            case "," where !quoted:
                fields.append(current.trimmingCharacters(in: .whitespaces))
                current = ""
            default: current.append(character)
            }
        }
        fields.append(current.trimmingCharacters(in: .whitespaces))
        return fields
    }
}
