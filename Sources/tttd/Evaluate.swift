import ArgumentParser
import Foundation
import Logging
import TTTAnalysis
import TTTConfig

/// `tttd evaluate FILE.csv`: the configured analyzer over labelled texts, to choose a model or a
/// prompt with figures rather than impressions.
struct Evaluate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Run the configured analyzer over labelled texts and print accuracy, precision, recall and F1.",
        discussion: """
            FILE.csv has a header line `text,label` (label: hateful or not_hateful); quoted fields may hold \
            commas and line breaks. Requests keep to analysis.requests_per_minute. Scores are for the \
            hateful class; rows whose analysis failed are counted apart (`failed`).
            """)

    @OptionGroup var options: ConfigOption
    @Argument(help: ArgumentHelp("Labelled texts.", valueName: "FILE.csv"))
    var file: String
    @Flag(name: .long, help: "Print {\"n\", \"accuracy\", \"precision\", \"recall\", \"f1\", \"failed\"}.")
    var json = false

    func run() async throws {
        let configuration = await loadConfiguration(options.config)
        let rows: [LabelledText]
        do { rows = try LabelledText.read(path: file) } catch {
            writeError("\(file): \(error)")
            throw ExitCode(1)
        }
        let prompt: PromptTemplate
        do { prompt = try PromptTemplate.load(path: configuration.analysis.prompt) } catch {
            writeError("\(error)")
            throw ExitCode(1)
        }
        // Every request within the budget, the analyzer's own retries included.
        let analyzer = OpenAIChatAnalyzer(
            baseURL: configuration.analysis.baseURL, apiKey: configuration.secrets.analysisAPIKey,
            model: configuration.analysis.model, temperature: configuration.analysis.temperature, prompt: prompt,
            pacer: RequestPacer(perMinute: configuration.analysis.requestsPerMinute), logger: Logger(label: "tttd.evaluate"))
        var tally = Tally()
        for (index, row) in rows.enumerated() {
            var attempt = 0
            while true {
                attempt += 1
                do {
                    let outcome = try await analyzer.analyze(AnalysisRequest(transcript: row.text, context: nil))
                    tally.add(predicted: outcome.verdict.hateful, actual: row.hateful)
                    break
                } catch {
                    if case .retriable(let reason, let retryAfter) = error, attempt < 5 {
                        writeError("row \(row.line): \(reason); retrying")
                        try await Task.sleep(for: retryAfter ?? .seconds(2))
                        continue
                    }
                    writeError("row \(row.line): analysis failed: \(error)")
                    tally.failed += 1
                    break
                }
            }
            if !json && (index + 1) % 10 == 0 { writeError("\(index + 1)/\(rows.count)") }
        }
        await analyzer.shutdown()
        if json {
            let object: [String: Any] = ["n": tally.n, "accuracy": tally.accuracy, "precision": tally.precision,
                                         "recall": tally.recall, "f1": tally.f1, "failed": tally.failed]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("model      \(configuration.analysis.model) (\(configuration.analysis.baseURL))")
            print("prompt     \(prompt.path) (sha256 \(prompt.sha256.prefix(12)))")
            print("texts      \(tally.n) judged, \(tally.failed) failed")
            print(String(format: "accuracy   %.3f", tally.accuracy))
            print(String(format: "precision  %.3f   (hateful class: %d true positives, %d false positives)", tally.precision, tally.truePositives, tally.falsePositives))
            print(String(format: "recall     %.3f   (%d hateful texts missed)", tally.recall, tally.falseNegatives))
            print(String(format: "f1         %.3f", tally.f1))
        }
    }
}

struct Tally {
    var truePositives = 0, falsePositives = 0, trueNegatives = 0, falseNegatives = 0, failed = 0

    mutating func add(predicted: Bool, actual: Bool) {
        switch (predicted, actual) {
        case (true, true): truePositives += 1
        case (true, false): falsePositives += 1
        case (false, false): trueNegatives += 1
        case (false, true): falseNegatives += 1
        }
    }

    var n: Int { truePositives + falsePositives + trueNegatives + falseNegatives }
    var accuracy: Double { n == 0 ? 0 : Double(truePositives + trueNegatives) / Double(n) }
    var precision: Double { truePositives + falsePositives == 0 ? 0 : Double(truePositives) / Double(truePositives + falsePositives) }
    var recall: Double { truePositives + falseNegatives == 0 ? 0 : Double(truePositives) / Double(truePositives + falseNegatives) }
    var f1: Double { precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall) }
}

/// One row of the evaluation file.
struct LabelledText: Equatable {
    var line: Int
    var text: String
    var hateful: Bool

    struct FormatError: Error, CustomStringConvertible {
        var description: String
    }

    static func read(path: String) throws -> [LabelledText] {
        guard let data = FileManager.default.contents(atPath: path) else { throw FormatError(description: "cannot read the file") }
        return try parse(String(decoding: data, as: UTF8.self))
    }

    /// RFC 4180 CSV with a `text,label` header (columns in any order, more columns ignored).
    static func parse(_ csv: String) throws -> [LabelledText] {
        let records = csvRecords(csv)
        guard let header = records.first?.fields.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }),
              let textColumn = header.firstIndex(of: "text"), let labelColumn = header.firstIndex(of: "label") else {
            throw FormatError(description: "line 1: the header must name the columns text and label")
        }
        var rows = [LabelledText]()
        for record in records.dropFirst() where !(record.fields.count == 1 && record.fields[0].isEmpty) {
            guard record.fields.count > max(textColumn, labelColumn) else {
                throw FormatError(description: "line \(record.line): \(record.fields.count) columns, the header has \(header.count)")
            }
            let label = record.fields[labelColumn].trimmingCharacters(in: .whitespaces).lowercased()
            guard label == "hateful" || label == "not_hateful" else {
                throw FormatError(description: "line \(record.line): label \"\(label)\" is neither hateful nor not_hateful")
            }
            rows.append(LabelledText(line: record.line, text: record.fields[textColumn], hateful: label == "hateful"))
        }
        return rows
    }

    static func csvRecords(_ csv: String) -> [(line: Int, fields: [String])] {
        var records = [(line: Int, fields: [String])]()
        var fields = [String]()
        var field = ""
        var quoted = false
        var line = 1
        var recordLine = 1
        var characters = Array(csv.replacingOccurrences(of: "\r\n", with: "\n"))
        if characters.first == "\u{FEFF}" { characters.removeFirst() }
        var index = 0
        while index < characters.count {
            let character = characters[index]
            if quoted {
                if character == "\"" {
                    if index + 1 < characters.count && characters[index + 1] == "\"" {
                        field.append("\"")
                        index += 1
                    } else {
                        quoted = false
                    }
                } else {
                    if character == "\n" { line += 1 }
                    field.append(character)
                }
            } else if character == "\"" && field.isEmpty {
                quoted = true
            } else if character == "," {
                fields.append(field)
                field = ""
            } else if character == "\n" {
                fields.append(field)
                records.append((recordLine, fields))
                fields = []
                field = ""
                line += 1
                recordLine = line
            } else {
                field.append(character)
            }
            index += 1
        }
        if !field.isEmpty || !fields.isEmpty {
            fields.append(field)
            records.append((recordLine, fields))
        }
        return records
    }
}
