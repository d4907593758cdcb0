import ArgumentParser
import Foundation
import TTTControl

struct Alerts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List alerts, newest first; acknowledge one.",
        subcommands: [List.self, Ack.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List alerts, newest first (the default).")
        @Flag(name: .long, help: "Only alerts nobody has acknowledged.")
        var unacked = false
        @Option(name: .long, help: ArgumentHelp("At most this many (default 100).", valueName: "n"))
        var limit: Int?
        @OptionGroup var options: ClientOptions

        func run() throws {
            let alerts: [JSONValue] = try options.connect().call("alerts.list", AlertsListParams(unacked: unacked, limit: limit))
            if options.json { return try Output.json(alerts) }
            if alerts.isEmpty {
                print(unacked ? "No alert waits for acknowledgement." : "No alert yet.")
                return
            }
            for alert in alerts { print(AlertText.render(alert)) }
        }
    }

    struct Ack: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Acknowledge an alert (recorded with your Unix user).")
        @Argument(help: ArgumentHelp("The alert's id (see `tttctl alerts`).", valueName: "id"))
        var id: Int64
        @OptionGroup var options: ClientOptions

        func run() throws {
            let result: AlertsAckResult = try options.connect().call("alerts.ack", AlertsAckParams(id: id))
            if options.json { return try Output.json(result) }
            print(result.already ? "Alert \(result.id) was already acknowledged by \(result.ackedBy)." : "Alert \(result.id) acknowledged.")
        }
    }
}

struct Evidence: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Export an alert's evidence.", subcommands: [Export.self])

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an alert's audio clip and a JSON manifest (transcript, verdict, model, prompt and clip hashes) into DIR.")
        @Argument(help: ArgumentHelp("The alert's id.", valueName: "alert-id"))
        var id: Int64
        @Argument(help: ArgumentHelp("Where to write (created if needed).", valueName: "dir"))
        var directory: String
        @OptionGroup var options: ClientOptions

        func run() throws {
            let result: EvidenceExportResult = try options.connect().call("evidence.export", EvidenceExportParams(id: id))
            let folder = URL(fileURLWithPath: directory)
            do {
                try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                var written = [String]()
                if let name = result.clipName, let base64 = result.clipBase64, let clip = Data(base64Encoded: base64) {
                    try clip.write(to: folder.appendingPathComponent(name))
                    written.append(name)
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                let manifest = "alert-\(id).json"
                try encoder.encode(result.manifest).write(to: folder.appendingPathComponent(manifest))
                written.append(manifest)
                if options.json { return try Output.json(written.map { folder.appendingPathComponent($0).path }) }
                print("Wrote \(written.map { folder.appendingPathComponent($0).path }.joined(separator: " and ")).")
                if result.manifest["clip"]?["intact"] == .bool(false) {
                    Output.error("warning: the clip no longer matches the SHA-256 recorded with the alert")
                }
            } catch {
                Output.error("cannot write into \(directory): \(error.localizedDescription)")
                throw ExitCode(1)
            }
        }
    }
}

/// An alert as a moderator reads it: who, how bad, the words, and what to run.
enum AlertText {
    static func render(_ alert: JSONValue) -> String {
        let id = EventLine.text(alert["id"]) ?? "?"
        let risk = alert["risk_score"]?.doubleValue.map { String(format: "%.2f", $0) } ?? "?"
        let acked = alert["acked"] == .bool(true) ? "acknowledged by \(alert["acked_by"]?.stringValue ?? "?")" : "NOT ACKNOWLEDGED"
        var lines = ["#\(id)  @\(alert["username"]?.stringValue ?? "?")  live \(EventLine.text(alert["live_id"]) ?? "?")  risk \(risk)  \(alert["category"]?.stringValue ?? "")  \(acked)"]
        var kind = [alert["hate_type"]?.stringValue, alert["target"]?.stringValue.map { "target: \($0)" }].compactMap { $0 }
        if alert["manipulation"] == .bool(true) { kind.append("the speaker tried to manipulate the model") }
        if !kind.isEmpty { lines.append("    " + kind.joined(separator: ", ")) }
        if let citation = alert["citation"]?.stringValue, !citation.isEmpty {
            let verified = alert["quote_verified"] == .bool(true) ? "" : "  (NOT found in the transcript: check the audio)"
            lines.append("    « \(citation) »\(verified)")
        }
        if let why = alert["justification"]?.stringValue, !why.isEmpty { lines.append("    \(why)") }
        if let deliveries = alert["deliveries"]?.arrayValue, !deliveries.isEmpty {
            lines.append("    sent: " + deliveries.map { "\($0["channel"]?.stringValue ?? "?") \($0["state"]?.stringValue ?? "?")" }.joined(separator: ", "))
        }
        if alert["acked"] != .bool(true) { lines.append("    tttctl alerts ack \(id)") }
        return lines.joined(separator: "\n")
    }
}
