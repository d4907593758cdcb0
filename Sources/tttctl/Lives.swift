import ArgumentParser
import Foundation
import TTTControl

struct Lives: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List lives, newest first.")
    @Flag(name: .long, help: "Only lives still going on.")
    var active = false
    @Argument(help: ArgumentHelp("Only this account's lives.", valueName: "@user"))
    var username: String?
    @Option(name: .long, help: ArgumentHelp("At most this many (default 50).", valueName: "n"))
    var limit: Int?
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() throws {
        let lives: [LiveInfo] = try options.connect().call(
            "lives.list", LivesListParams(active: active, username: username, limit: limit))
        if options.json { return try Output.json(lives) }
        if lives.isEmpty {
            print(active ? "No live is going on." : "No live recorded yet.")
            return
        }
        Output.table(["ID", "USERNAME", "STATUS", "STARTED", "DURATION", "PEAK", "TITLE"], lives.map { live in
            [String(live.id), "@" + live.username,
             live.status == "live" ? "LIVE" : "ended" + (live.endReason.map { " (\($0))" } ?? ""),
             Output.dateTime(live.startedAt),
             Output.duration((live.endedAt ?? Date()).timeIntervalSince(live.startedAt)),
             live.peakViewers.map(String.init) ?? "-",
             (live.restricted ? "[restricted] " : "") + (live.title ?? "")]
        })
    }
}

struct Live: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show one live.", subcommands: [Show.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a live with its transcripts and analyses.")
        @Argument(help: ArgumentHelp("The live's id (see `tttctl lives`).", valueName: "id"))
        var id: Int64
        @OptionGroup var options: ClientOptions

        func run() throws {
            let live: LiveInfo = try options.connect().call("lives.show", LivesShowParams(id: id))
            if options.json { return try Output.json(live) }
            Output.pairs([
                ("live", String(live.id)),
                ("account", "@" + live.username),
                ("room", live.roomId),
                ("title", live.title ?? "-"),
                ("status", live.status + (live.endReason.map { " (\($0))" } ?? "")),
                ("started", Output.dateTime(live.startedAt)),
                ("ended", live.endedAt.map(Output.dateTime) ?? "-"),
                ("peak viewers", live.peakViewers.map(String.init) ?? "-"),
                ("transcripts", String(live.transcripts?.count ?? 0)),
                ("analyses", String(live.analyses?.count ?? 0)),
            ])
            if live.restricted { print("\nThis live is age-restricted: tttd needs the tiktok_session credential to capture it.") }
            let transcripts = live.transcripts ?? []
            guard !transcripts.isEmpty else { return }
            let unreliable = transcripts.filter { $0["flags"]?.arrayValue?.contains(.string("unreliable")) == true }.count
            let voiced = transcripts.filter { $0["silent"] != .bool(true) && $0["flags"]?.arrayValue?.contains(.string("skipped")) != true }.count
            print("\nTranscript (\(transcripts.count) windows, \(voiced) with speech, \(unreliable) not reliably understood):")
            for transcript in transcripts { print("  " + EventLine.transcript(transcript)) }
        }
    }
}

struct Follow: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print events as they happen, until interrupted.",
        discussion: "Events: live_started, live_ended, transcript, analysis, alert, pipeline_state.")
    @Argument(help: ArgumentHelp("Accounts to follow.", valueName: "@user"))
    var usernames: [String] = []
    @Flag(name: .long, help: "Follow every account.")
    var all = false
    @Flag(name: .long, help: "Stop when the followed live ends (with --all: when any live ends).")
    var untilEnd = false
    @OptionGroup var options: ClientOptions

    func validate() throws {
        if usernames.isEmpty && !all { throw ValidationError("name an account (tttctl follow @user) or use --all") }
        if !usernames.isEmpty && all { throw ValidationError("give accounts or --all, not both") }
    }

    func run() throws {
        let client = try options.connect()
        let _: FollowResult = try client.call("follow", FollowParams(usernames: usernames, all: all))
        // Events may be hours apart.
        client.replyTimeout = nil
        let decoder = RPC.makeDecoder()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        while true {
            let line = try client.readLine()
            guard let message = try? decoder.decode(RPCNotification<JSONValue>.self, from: line) else { continue }
            if message.method == "error" {
                Output.error(message.params["message"]?.stringValue ?? "tttd ended the stream")
                // tttd stopping is tttd going away (3), not a request refused (1).
                throw ExitCode(message.params["code"]?.stringValue == "shutting_down" ? 3 : 1)
            }
            let event = message.params
            // Written straight to the descriptor: a pipe reader sees each event as it comes.
            let text = options.json ? String(decoding: try encoder.encode(event), as: UTF8.self) : EventLine.render(event)
            FileHandle.standardOutput.write(Data((text + "\n").utf8))
            if untilEnd, event["type"]?.stringValue == "live_ended" { return }
        }
    }
}

/// One readable line per event for people watching `tttctl follow`.
enum EventLine {
    static func render(_ event: JSONValue) -> String {
        let type = event["type"]?.stringValue ?? "event"
        let at = event["at"]?.stringValue.flatMap(Timestamp.parse).map(Output.time) ?? Output.time(Date())
        let who = event["username"]?.stringValue.map { "@" + $0 } ?? ""
        let live = text(event["live_id"]).map { "live \($0)" } ?? ""
        switch type {
        case "live_started":
            let title = event["title"]?.stringValue.map { " \"\($0)\"" } ?? ""
            return "\(at)  \(who)  LIVE\(title)  (\(live), room \(event["room_id"]?.stringValue ?? "?"))"
        case "live_ended":
            let reason = event["reason"]?.stringValue.map { " (\($0))" } ?? ""
            return "\(at)  \(who)  ended\(reason)  (\(live))"
        case "transcript":
            return "\(at)  \(who)  \(transcript(event))  (\(live))"
        case "analysis", "analysis_failed":
            if type == "analysis_failed" {
                return "\(at)  \(who)  analysis of #\(text(event["seq"]) ?? "?") FAILED: \(event["error"]?.stringValue ?? "")  (\(live))"
            }
            let risk = event["risk_score"]?.doubleValue.map { String(format: "%.2f", $0) } ?? "?"
            let hate = event["hate_type"]?.stringValue.map { " \($0)" } ?? ""
            return "\(at)  \(who)  #\(text(event["seq"]) ?? "?") \(event["category"]?.stringValue ?? "?")\(hate) risk \(risk)  (\(live))"
        case "alert":
            return "\(at)  ALERT " + AlertText.render(event)
        case "pipeline_state":
            let reason = event["reason"]?.stringValue.map { ": \($0)" } ?? ""
            return "\(at)  \(who)  pipeline \(event["state"]?.stringValue ?? "?")\(reason)  (\(live))"
        default:
            var fields = [String]()
            if case .object(let object) = event {
                for key in object.keys.sorted() where !["type", "at", "username", "live_id"].contains(key) {
                    if let value = text(object[key]) { fields.append("\(key)=\(value)") }
                }
            }
            return "\(at)  \(who)  \(type)  \(live)  \(fields.joined(separator: " "))"
        }
    }

    /// `#3 [30.0–44.6 s] "text"`, or what happened to a window that has no text.
    static func transcript(_ event: JSONValue) -> String {
        let seq = text(event["seq"]) ?? "?"
        let span = String(format: "%.1f–%.1f s", event["start_s"]?.doubleValue ?? 0, event["end_s"]?.doubleValue ?? 0)
        let flags = event["flags"]?.arrayValue?.compactMap(\.stringValue) ?? []
        let body: String
        if event["silent"] == .bool(true) {
            body = "(silence)"
        } else if flags.contains("skipped") {
            body = "(skipped: \(event["reason"]?.stringValue ?? "no reason given"))"
        } else {
            body = "\"\(event["text"]?.stringValue ?? "")\""
        }
        let marks = flags.filter { $0 != "skipped" }
        let language = event["language"]?.stringValue.map { " [\($0)]" } ?? ""
        return "#\(seq) [\(span)] \(body)\(language)" + (marks.isEmpty ? "" : "  (\(marks.joined(separator: ", ")))")
    }

    static func text(_ value: JSONValue?) -> String? {
        switch value {
        case .string(let text)?: return text
        case .integer(let number)?: return String(number)
        case .number(let number)?: return String(number)
        case .bool(let flag)?: return String(flag)
        default: return nil
        }
    }
}
