import Foundation
import TestSupport
import Testing

/// man/tttctl.1 and man/tttd.8 are generated from the command definitions (`make man`) and
/// committed: a command, an option or a description changed without regenerating them fails here,
/// named. The commands come from the built binaries' `--experimental-dump-help`, what the
/// generator itself reads.
@Suite("manual pages")
struct ManualPageTests {
    struct Dump: Decodable { var command: Command }

    struct Command: Decodable {
        var commandName: String
        var abstract: String?
        var shouldDisplay: Bool?
        var subcommands: [Command]?
        var arguments: [Argument]?
    }

    struct Argument: Decodable {
        struct Name: Decodable {
            var kind: String
            var name: String
        }
        var names: [Name]?
        var abstract: String?
        var shouldDisplay: Bool?
    }

    @Test("each command, long option and description of tttctl and tttd is in its page",
          arguments: [("tttctl", "man/tttctl.1"), ("tttd", "man/tttd.8")])
    func pageIsCurrent(tool: String, page: String) async throws {
        let executable = tool == "tttctl" ? TestEnvironment.tttctl : TestEnvironment.tttd
        let result = try await runCommand(executable, ["--experimental-dump-help"])
        try #require(result.status == 0, "\(result)")
        let dump = try JSONDecoder().decode(Dump.self, from: Data(result.stdout.utf8))
        let text = try String(contentsOf: TestEnvironment.repoRoot.appendingPathComponent(page), encoding: .utf8)
        let stale = "(run `make man` and commit \(page))"
        // `.It Fl h , -help`, `.It Fl -label Ar label...`: the options each item names.
        let options = Set(text.split(separator: "\n").filter { $0.hasPrefix(".It Fl ") }
            .flatMap { $0.split(separator: " ").filter { $0.hasPrefix("-") }.map(String.init) })

        var commands = 0
        func check(_ command: Command, path: [String]) {
            commands += 1
            let name = ([tool] + path).joined(separator: " ")
            if !path.isEmpty {
                let listed = text.contains(".It Em \(command.commandName)\n")
                #expect(listed, "\(page) lacks the command \(name) \(stale)")
            }
            if let abstract = command.abstract, !abstract.isEmpty {
                let described = text.contains(abstract)
                #expect(described, "\(page) lacks the description of \(name): \(abstract) \(stale)")
            }
            for argument in command.arguments ?? [] where argument.shouldDisplay != false {
                for option in argument.names ?? [] where option.kind == "long" {
                    #expect(options.contains("-" + option.name), "\(page) lacks --\(option.name) of \(name) \(stale)")
                }
                if let abstract = argument.abstract, !abstract.isEmpty {
                    let explained = text.contains(abstract)
                    #expect(explained, "\(page) lacks the help of an argument of \(name): \(abstract) \(stale)")
                }
            }
            for subcommand in command.subcommands ?? [] where subcommand.shouldDisplay != false {
                check(subcommand, path: path + [subcommand.commandName])
            }
        }
        check(dump.command, path: [])
        // tttctl: the root, 9 commands and their subcommands; tttd: the root and 3 commands (and help).
        #expect(commands >= (tool == "tttctl" ? 15 : 4), "the dump of \(tool) lists only \(commands) commands")
    }
}
