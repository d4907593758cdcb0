import ArgumentParser
import Foundation
import TTTControl

/// Thin client: each command is one or a few requests to tttd, printed as a table or as JSON.
struct TTTCTL: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tttctl",
        abstract: "Control tttd, the TikTok live moderation daemon.",
        discussion: """
            Exit status: 0 ok, 1 tttd refused the request (bad input, not found, not allowed), \
            2 usage error, 3 tttd cannot be reached.
            """,
        version: TTTVersion.client,
        subcommands: [Status.self, Accounts.self, Lives.self, Live.self, Follow.self, Pipelines.self, PipelineCommand.self,
                      Alerts.self, Evidence.self])
}

enum TTTVersion { static let client = "0.1.0" }

struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The control socket (default: $TTTCTL_SOCKET, else /run/tttd/control.sock).", valueName: "path"))
    var socket: String?

    @Flag(name: .long, help: "Print JSON for scripts instead of a table.")
    var json = false

    var socketPath: String {
        socket ?? ProcessInfo.processInfo.environment["TTTCTL_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
            ?? ControlClient.defaultSocketPath
    }

    /// `TTTCTL_TIMEOUT` (seconds, default 60): how long to wait for tttd's answer.
    func connect() throws -> ControlClient {
        let client = try ControlClient(path: socketPath)
        if let text = ProcessInfo.processInfo.environment["TTTCTL_TIMEOUT"], let seconds = Int(text), seconds > 0 {
            client.replyTimeout = .seconds(seconds)
        }
        return client
    }
}

// MARK: status

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what tttd is doing.")
    @OptionGroup var options: ClientOptions

    func run() throws {
        let status: StatusResult = try options.connect().call("status")
        if options.json { return try Output.json(status) }
        Output.pairs([
            ("version", status.version),
            ("uptime", Output.duration(status.uptimeS)),
            ("accounts", "\(status.accounts)"),
            ("lives", "\(status.livesActive) active"),
            ("pipelines", "\(status.pipelinesActive) active"),
            ("database", status.database),
            ("analysis", (status.analysis ?? "-") + (status.analysisBacklog.map { $0 > 0 ? ", \($0) windows waiting" : "" } ?? "")),
            ("your role", status.role.rawValue),
        ])
        if let detection = status.detection {
            print("")
            let every = Output.duration(detection.roundS)
            print(detection.stretched
                ? "detection: each account every ~\(every) (target \(Output.duration(detection.intervalS)); the budget of \(detection.budgetRps) requests/s cannot keep it)"
                : "detection: each account every \(every)")
            for egress in detection.egresses {
                var line = "  \(egress.name): \(String(format: "%.2f", egress.rateRps)) requests/s, \(egress.requests) sent"
                if egress.pausedForS > 0 { line += ", paused \(Output.duration(egress.pausedForS)) (\(egress.lastBlock ?? "blocked"))" }
                else if egress.slowdown < 1 { line += ", slowed down after \(egress.lastBlock ?? "a block")" }
                print(line)
            }
        }
    }
}

// MARK: accounts

struct Accounts: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Manage the watched accounts.",
        subcommands: [Add.self, Remove.self, List.self, Import.self],
        defaultSubcommand: List.self)

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Watch accounts (admin).")
        @Argument(help: ArgumentHelp("TikTok usernames, with or without @.", valueName: "@user"))
        var usernames: [String]
        @Option(name: .long, help: ArgumentHelp("A label for these accounts (repeatable).", valueName: "label"))
        var label: [String] = []
        @OptionGroup var options: ClientOptions

        func validate() throws {
            if usernames.isEmpty { throw ValidationError("name at least one account: tttctl accounts add @user") }
        }

        func run() throws {
            let result: AccountsAddResult = try options.connect().call(
                "accounts.add", AccountsAddParams(usernames: usernames, labels: label))
            if options.json { return try Output.json(result) }
            for name in result.added { print("added @\(name)") }
            for name in result.existing { print("@\(name) was already watched") }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop watching accounts (admin); their lives stay in the history.")
        @Argument(help: ArgumentHelp("TikTok usernames.", valueName: "@user"))
        var usernames: [String]
        @OptionGroup var options: ClientOptions

        func validate() throws {
            if usernames.isEmpty { throw ValidationError("name at least one account: tttctl accounts remove @user") }
        }

        func run() throws {
            let result: AccountsRemoveResult = try options.connect().call(
                "accounts.remove", AccountsRemoveParams(usernames: usernames))
            if options.json { return try Output.json(result) }
            for name in result.removed { print("removed @\(name)") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the watched accounts.")
        @Option(name: .long, help: ArgumentHelp("Only accounts with this label.", valueName: "label"))
        var label: String?
        @OptionGroup var options: ClientOptions

        func run() throws {
            let accounts: [AccountInfo] = try options.connect().call("accounts.list", AccountsListParams(label: label))
            if options.json { return try Output.json(accounts) }
            if accounts.isEmpty {
                print(label == nil ? "No accounts are watched. Add one: tttctl accounts add @user" : "No account has the label \(label!).")
                return
            }
            Output.table(
                ["USERNAME", "STATE", "LAST CHECK", "LABELS", "ADDED"],
                accounts.map { account in
                    ["@" + account.username,
                     account.live ? "LIVE" : account.checkState.rawValue,
                     account.lastCheckedAt.map(Output.ago) ?? "never",
                     account.labels.joined(separator: ","),
                     Output.date(account.addedAt)]
                })
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Watch every account listed in a file, one username per line (admin).",
            discussion: "Blank lines and lines starting with # are skipped. Bad lines are reported by number; the good ones are added.")
        @Argument(help: ArgumentHelp("The file, or - for standard input.", valueName: "file"))
        var file: String
        @Option(name: .long, help: ArgumentHelp("A label for these accounts (repeatable).", valueName: "label"))
        var label: [String] = []
        @OptionGroup var options: ClientOptions

        func run() throws {
            let data: Data
            do {
                data = file == "-" ? FileHandle.standardInput.readDataToEndOfFile()
                    : try Data(contentsOf: URL(fileURLWithPath: file))
            } catch {
                throw CtlFailure.usage("cannot read \(file): \((error as NSError).localizedDescription)")
            }
            let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
                .map { String($0.hasSuffix("\r") ? $0.dropLast() : $0) }
            let client = try options.connect()
            var total = AccountsImportResult(added: [], existing: [], rejected: [])
            for batch in Self.batches(lines) {
                let result: AccountsImportResult = try client.call(
                    "accounts.import", AccountsImportParams(lines: batch.lines, firstLine: batch.firstLine, labels: label))
                total.added += result.added
                total.existing += result.existing
                total.rejected += result.rejected
            }
            if options.json { try Output.json(total) } else {
                for problem in total.rejected { Output.error("\(file):\(problem.line): \(problem.message)") }
                print("added \(total.added.count), already watched \(total.existing.count), rejected \(total.rejected.count)")
            }
            if !total.rejected.isEmpty { throw ExitCode(1) }
        }

        /// Requests stay well under the daemon's 64 KiB limit whatever the file holds.
        static func batches(_ lines: [String]) -> [(lines: [String], firstLine: Int)] {
            var batches = [(lines: [String], firstLine: Int)]()
            var current = [String]()
            var first = 1
            var size = 0
            for (index, line) in lines.enumerated() {
                let clipped = line.count > 200 ? String(line.prefix(200)) : line
                if size + clipped.utf8.count + 8 > 32 * 1024 || current.count >= 1000 {
                    batches.append((current, first))
                    current = []
                    size = 0
                    first = index + 1
                }
                current.append(clipped)
                size += clipped.utf8.count + 8
            }
            if !current.isEmpty { batches.append((current, first)) }
            return batches
        }
    }
}

// MARK: exit codes

enum CtlFailure: Error {
    case usage(String)
}

/// `--socket PATH` and `--json` are accepted before the command too (`tttctl --json status`):
/// they are moved behind it, where each command declares them.
func normalisedArguments(_ arguments: [String]) -> [String] {
    var global = [String]()
    var rest = [String]()
    var index = 0
    var seenCommand = false
    while index < arguments.count {
        let argument = arguments[index]
        if !seenCommand && argument == "--json" {
            global.append(argument)
        } else if !seenCommand && argument == "--socket" && index + 1 < arguments.count {
            global += [argument, arguments[index + 1]]
            index += 1
        } else if !seenCommand && argument.hasPrefix("--socket=") {
            global.append(argument)
        } else {
            if !argument.hasPrefix("-") { seenCommand = true }
            rest.append(argument)
        }
        index += 1
    }
    return rest + global
}

/// ArgumentParser exits 64 on usage errors; tttctl's contract says 2.
func runMain() -> Never {
    // A reader that leaves (`tttctl follow --all | head`) ends tttctl as it ends any filter, even
    // when started with SIGPIPE ignored (systemd units, some shells): a write to the closed pipe
    // would otherwise fail, and Foundation's FileHandle.write traps on a failed write.
    signal(SIGPIPE, SIG_DFL)
    do {
        var command = try TTTCTL.parseAsRoot(normalisedArguments(Array(CommandLine.arguments.dropFirst())))
        try command.run()
        exit(0)
    } catch let error as ControlClientError {
        Output.error(error.description)
        switch error {
        case .remote: exit(1)
        case .unreachable, .protocolViolation: exit(3)
        }
    } catch CtlFailure.usage(let message) {
        Output.error(message)
        exit(2)
    } catch let code as ExitCode {
        exit(code.rawValue)
    } catch {
        let code = TTTCTL.exitCode(for: error)
        if code == .success {
            print(TTTCTL.fullMessage(for: error))
            exit(0)
        }
        Output.error(TTTCTL.fullMessage(for: error))
        exit(2)
    }
}

runMain()
