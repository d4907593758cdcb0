import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// `tttctl accounts …` end to end: the real tttctl, the real tttd, the database checked with psql.
// One test at a time: each starts a tttd whose pool holds up to 8 connections of the shared test cluster.
@Suite("accounts through tttctl", .serialized)
struct AccountsTests {
    @Test("add accepts @Alice and alice: one account, stored lower-case without @")
    func addNormalises() async throws {
        let (daemon, database) = try await startDaemon()
        let first = try await daemon.ctl(["accounts", "add", "@Alice"])
        #expect(first.status == 0, "\(first)")
        #expect(first.stdout.contains("added @alice"), "\(first)")
        let second = try await daemon.ctl(["accounts", "add", "alice", "--json"])
        #expect(second.status == 0, "\(second)")
        let result = try second.json() as? [String: Any]
        #expect(result?["added"] as? [String] == [], "\(second)")
        #expect(result?["existing"] as? [String] == ["alice"], "\(second)")
        #expect(try await usernames(daemon) == ["alice"])
        #expect(try await database.psql("SELECT username FROM accounts") == "alice")
        #expect(try await daemon.stop() == 0)
    }

    @Test("each bad name is refused with what is wrong; exit 1 and nothing changes, good names included",
          arguments: [
            ("a", "at least 2 characters"),
            ("abcdefghijklmnopqrstuvwxy", "25 characters, at most 24"),
            ("al ice", "a space is not allowed"),
            ("al-ice", "\"-\" is not allowed"),
            ("alice.", "cannot end with \".\""),
            ("@", "empty"),
          ])
    func badNames(bad: String, reason: String) async throws {
        let (daemon, database) = try await startDaemon()
        let refused = try await daemon.ctl(["accounts", "add", "good_one", bad, "@Good.Two"])
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains(reason), "stderr must say what is wrong with \(bad): \(refused)")
        if bad != "@" { #expect(refused.stderr.contains("\"\(bad)\""), "stderr must quote the bad name: \(refused)") }
        #expect(refused.stdout.isEmpty, "\(refused)")
        #expect(try await usernames(daemon) == [], "a refused request added accounts")
        #expect(try await database.psql("SELECT count(*) FROM accounts") == "0")
        #expect(try await database.psql("SELECT count(*) FROM events") == "0")
        #expect(try await daemon.stop() == 0)
    }

    @Test("several bad names at once: every one is named; the stable code is invalid_username")
    func severalBadNames() async throws {
        let (daemon, database) = try await startDaemon()
        let refused = try await daemon.ctl(["accounts", "add", "a", "ok_name", "al-ice", "alice.", "x".padding(toLength: 30, withPad: "y", startingAt: 0)])
        #expect(refused.status == 1, "\(refused)")
        for phrase in ["\"a\"", "\"al-ice\"", "\"alice.\"", "30 characters"] {
            #expect(refused.stderr.contains(phrase), "\(phrase) missing from \(refused)")
        }
        // On the wire: data.code invalid_username, data.problems one per bad name.
        let client = try RawClient(path: daemon.socketPath)
        let error = expectError(try await client.call(#"{"jsonrpc":"2.0","id":1,"method":"accounts.add","params":{"usernames":["a","ok_name","al-ice"],"labels":[]}}"#),
                                "invalid_username", rpcCode: -32602, id: 1)
        #expect(((error?["data"] as? [String: Any])?["problems"] as? [String])?.count == 2, "\(String(describing: error))")
        #expect(try await database.psql("SELECT count(*) FROM accounts") == "0")
        #expect(try await daemon.stop() == 0)
    }

    @Test("adding one already watched says so; --label twice gives both labels; labels merge")
    func existingAndLabels() async throws {
        let (daemon, database) = try await startDaemon()
        #expect(try await daemon.ctl(["accounts", "add", "bob"]).status == 0)
        let again = try await daemon.ctl(["accounts", "add", "@BOB", "carol"])
        #expect(again.status == 0, "\(again)")
        #expect(again.stdout.contains("@bob was already watched"), "\(again)")
        #expect(again.stdout.contains("added @carol"), "\(again)")

        let labelled = try await daemon.ctl(["accounts", "add", "dave", "--label", "north", "--label", "team1"])
        #expect(labelled.status == 0, "\(labelled)")
        #expect(try await account(daemon, "dave")?["labels"] as? [String] == ["north", "team1"])
        // An existing account gains the new labels and keeps its own.
        #expect(try await daemon.ctl(["accounts", "add", "dave", "bob", "--label", "south"]).status == 0)
        #expect(try await account(daemon, "dave")?["labels"] as? [String] == ["north", "south", "team1"])
        #expect(try await account(daemon, "bob")?["labels"] as? [String] == ["south"])
        let north = try await daemon.ctl(["accounts", "list", "--label", "north", "--json"])
        #expect((try north.json() as? [[String: Any]])?.compactMap { $0["username"] as? String } == ["dave"], "\(north)")
        // Already watched ones log no second event.
        #expect(try await database.psql("SELECT count(*) FROM events WHERE type = 'account_added'") == "3")
        #expect(try await daemon.stop() == 0)
    }

    @Test("accounts list --json has the documented keys; never checked: last_checked_at null, check_state unknown")
    func listKeys() async throws {
        // A TikTok that accepts connections and never answers: the accounts just added stay never
        // checked while the test looks (with no TikTok at all a failed check could be recorded first).
        let silent = try TCPListener()
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database, extraConfig: """
            tiktok:
              web_url: "http://127.0.0.1:\(silent.port)"
              webcast_url: "http://127.0.0.1:\(silent.port)"
            """)
        try await daemon.start()
        let before = Date()
        #expect(try await daemon.ctl(["accounts", "add", "zed", "amy"]).status == 0)
        let list = try await daemon.ctl(["accounts", "list", "--json"])
        #expect(list.status == 0, "\(list)")
        let rows = try #require(try list.json() as? [[String: Any]], "\(list)")
        #expect(rows.compactMap { $0["username"] as? String } == ["amy", "zed"], "sorted by name")
        for row in rows {
            let keys = Set(row.keys)
            #expect(keys.isSuperset(of: ["username", "labels", "added_at", "live", "last_checked_at", "check_state"]), "\(keys)")
            #expect(row["labels"] as? [String] == [])
            #expect(row["live"] as? Bool == false)
            #expect(row["last_checked_at"] is NSNull, "last_checked_at must be present and null: \(row)")
            #expect(row["check_state"] as? String == "unknown")
            let added = (row["added_at"] as? String).flatMap { try? Date($0, strategy: .iso8601) }
            #expect(added.map { abs($0.timeIntervalSince(before)) < 120 } == true, "added_at: \(String(describing: row["added_at"]))")
        }
        // The table for people.
        let table = try await daemon.ctl(["accounts", "list"])
        #expect(table.status == 0)
        #expect(table.stdout.contains("@amy") && table.stdout.contains("never"), "\(table)")
        #expect(try await daemon.stop() == 0)
        withExtendedLifetime(silent) {}
    }

    @Test("removing a name not watched: exit 1, not_found, and nothing is removed")
    func removeMissing() async throws {
        let (daemon, database) = try await startDaemon()
        #expect(try await daemon.ctl(["accounts", "add", "alice", "bob"]).status == 0)
        let ghost = try await daemon.ctl(["accounts", "remove", "@ghost"])
        #expect(ghost.status == 1, "\(ghost)")
        #expect(ghost.stderr.contains("@ghost is not watched"), "\(ghost)")
        let mixed = try await daemon.ctl(["accounts", "remove", "alice", "ghost"])
        #expect(mixed.status == 1, "\(mixed)")
        #expect(mixed.stderr.contains("ghost") && mixed.stderr.contains("nothing was removed") || mixed.stderr.contains("@ghost is not watched"), "\(mixed)")
        #expect(try await usernames(daemon) == ["alice", "bob"], "alice must still be watched")
        #expect(try await database.psql("SELECT count(*) FROM events WHERE type = 'account_removed'") == "0")
        // A name not watched says nothing about the database: status still reports it ok.
        let status = try await daemon.ctl(["status", "--json"])
        #expect((try status.json() as? [String: Any])?["database"] as? String == "ok", "\(status)")

        let client = try RawClient(path: daemon.socketPath)
        expectError(try await client.call(#"{"jsonrpc":"2.0","id":2,"method":"accounts.remove","params":{"usernames":["alice","ghost"]}}"#),
                    "not_found", id: 2)
        #expect(try await usernames(daemon) == ["alice", "bob"])

        let removed = try await daemon.ctl(["accounts", "remove", "@Alice"])
        #expect(removed.status == 0, "\(removed)")
        #expect(removed.stdout.contains("removed @alice"), "\(removed)")
        #expect(try await usernames(daemon) == ["bob"])
        #expect(try await database.psql("SELECT count(*) FROM events WHERE type = 'account_removed'") == "1")
        #expect(try await daemon.stop() == 0)
    }

    @Test("import FILE: blank lines and comments skipped, bad lines reported by number, good ones added, exit 1")
    func importMixed() async throws {
        let (daemon, database) = try await startDaemon()
        let file = daemon.directory.file("accounts.txt")
        let lines = [
            "alice",          // 1
            "",               // 2
            "# the north",    // 3
            "@Bob",           // 4
            "bad name",       // 5
            "  carol_3  ",    // 6
            "x",              // 7
            "dave.",          // 8
            "   # indented comment", // 9
            "Erin\r",         // 10 (a CRLF file)
            "\t",             // 11
        ]
        try lines.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let result = try await daemon.ctl(["accounts", "import", file])
        #expect(result.status == 1, "some lines were rejected: \(result)")
        for line in [5, 7, 8] {
            #expect(result.stderr.contains("\(file):\(line):"), "line \(line) must be reported: \(result)")
        }
        for line in [1, 2, 3, 4, 6, 9, 10, 11] {
            #expect(!result.stderr.contains("\(file):\(line):"), "line \(line) is fine: \(result)")
        }
        #expect(result.stdout.contains("added 4"), "\(result)")
        #expect(result.stdout.contains("rejected 3"), "\(result)")
        #expect(try await usernames(daemon) == ["alice", "bob", "carol_3", "erin"])
        try await expectEventsMatchAccounts(database, 4)

        // Again: all already watched, nothing rejected this time → exit 0.
        let good = daemon.directory.file("good.txt")
        try "alice\nbob\n# c\nfrank\n".write(toFile: good, atomically: true, encoding: .utf8)
        let again = try await daemon.ctl(["accounts", "import", good, "--json"])
        #expect(again.status == 0, "\(again)")
        let summary = try again.json() as? [String: Any]
        #expect(summary?["added"] as? [String] == ["frank"], "\(again)")
        #expect(Set(summary?["existing"] as? [String] ?? []) == ["alice", "bob"], "\(again)")
        #expect((summary?["rejected"] as? [Any])?.isEmpty == true, "\(again)")
        try await expectEventsMatchAccounts(database, 5)
        #expect(try await daemon.stop() == 0)
    }

    @Test("import of 5,000 names in several batches adds them all; bad lines in later batches keep their numbers")
    func importLarge() async throws {
        let (daemon, database) = try await startDaemon()
        let file = daemon.directory.file("big.txt")
        let names = (0..<5000).map { String(format: "user_%05d", $0) }
        try (names.joined(separator: "\n") + "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let result = try await daemon.ctl(["accounts", "import", file])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("added 5000"), "\(result)")
        #expect(try await database.psql("SELECT count(*) FROM accounts") == "5000")
        #expect(try await database.psql("SELECT count(*) FROM accounts WHERE username LIKE 'user\\_%'") == "5000")
        try await expectEventsMatchAccounts(database, 5000)
        let status = try await daemon.ctl(["status", "--json"])
        #expect((try status.json() as? [String: Any])?["accounts"] as? Int == 5000, "\(status)")

        // 5,000 lines again (all existing) with two bad ones far into the file.
        var mixed = names
        mixed[2344] = "not valid!"
        mixed[4998] = "-"
        let second = daemon.directory.file("mixed.txt")
        try mixed.joined(separator: "\n").write(toFile: second, atomically: true, encoding: .utf8)
        let again = try await daemon.ctl(["accounts", "import", second])
        #expect(again.status == 1, "\(again)")
        #expect(again.stderr.contains("\(second):2345:"), "\(again)")
        #expect(again.stderr.contains("\(second):4999:"), "\(again)")
        #expect(again.stderr.split(separator: "\n").filter { $0.contains(second + ":") }.count == 2, "\(again)")
        #expect(again.stdout.contains("already watched 4998"), "\(again)")
        #expect(try await database.psql("SELECT count(*) FROM accounts") == "5000")
        #expect(try await daemon.stop() == 0)
    }

    @Test("import - reads standard input")
    func importStdin() async throws {
        let (daemon, database) = try await startDaemon()
        let result = try await daemon.ctl(["accounts", "import", "-"], input: Data("@one_1\n# c\ntwo.2\n\nthree\nbad!\n".utf8))
        #expect(result.status == 1, "\(result)")
        #expect(result.stderr.contains(":6:"), "\(result)")
        #expect(try await usernames(daemon) == ["one_1", "three", "two.2"])
        try await expectEventsMatchAccounts(database, 3)
        #expect(try await daemon.stop() == 0)
    }

    @Test("usage errors exit 2, before any connection")
    func usageErrors() async throws {
        for arguments in [
            ["accounts", "add"],
            ["accounts", "remove"],
            ["accounts", "import"],
            ["accounts", "frobnicate", "x"],
            ["accounts", "list", "--frob"],
            ["accounts", "add", "alice", "--label"],
            ["status", "--bogus"],
            ["frobnicate"],
        ] {
            // A socket nobody listens on: a usage error must be found before connecting (else exit 3).
            let result = try await runTTTCTL(arguments + ["--socket", "/nonexistent/ttt-usage.sock"])
            #expect(result.status == 2, "tttctl \(arguments.joined(separator: " ")): \(result)")
            #expect(!result.stderr.isEmpty, "tttctl \(arguments.joined(separator: " ")) must say why: \(result)")
        }
        let unreadable = try await runTTTCTL(["accounts", "import", "/nonexistent/list.txt", "--socket", "/nonexistent/ttt-usage.sock"])
        #expect(unreadable.status == 2, "\(unreadable)")
        #expect(unreadable.stderr.contains("/nonexistent/list.txt"), "\(unreadable)")
    }

    @Test("an unreachable socket exits 3 and names the path")
    func unreachable() async throws {
        let after = try await runTTTCTL(["status", "--socket", "/nonexistent/ttt.sock"])
        #expect(after.status == 3, "\(after)")
        #expect(after.stderr.contains("/nonexistent/ttt.sock"), "\(after)")
        // A socket file nobody listens on.
        let directory = try TemporaryDirectory()
        let stale = directory.file("stale.sock")
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: stale.utf8) }
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        close(fd)
        let refused = try await runTTTCTL(["accounts", "list", "--socket", stale])
        #expect(refused.status == 3, "\(refused)")
        #expect(refused.stderr.contains(stale), "\(refused)")
    }

    @Test("tttctl --socket PATH status (the option before the command) also works: exit 3 naming the path")
    func socketBeforeCommand() async throws {
        let before = try await runTTTCTL(["--socket", "/nonexistent/ttt.sock", "status"])
        #expect(before.status == 3, "tttctl --socket PATH status: \(before)")
        #expect(before.stderr.contains("/nonexistent/ttt.sock"), "\(before)")
        let json = try await runTTTCTL(["--json", "--socket", "/nonexistent/ttt.sock", "accounts", "list"])
        #expect(json.status == 3, "tttctl --json --socket PATH accounts list: \(json)")
    }

    @Test("TTTCTL_SOCKET is honoured, and --socket wins over it")
    func socketFromEnvironment() async throws {
        let (daemon, _) = try await startDaemon()
        var environment = ProcessInfo.processInfo.environment
        environment["TTTCTL_SOCKET"] = daemon.socketPath
        let viaEnvironment = try await runTTTCTL(["status", "--json"], environment: environment)
        #expect(viaEnvironment.status == 0, "\(viaEnvironment)")
        #expect((try viaEnvironment.json() as? [String: Any])?["version"] is String)

        environment["TTTCTL_SOCKET"] = "/nonexistent/from-env.sock"
        let wrong = try await runTTTCTL(["status"], environment: environment)
        #expect(wrong.status == 3, "\(wrong)")
        #expect(wrong.stderr.contains("/nonexistent/from-env.sock"), "the message names the socket from the environment: \(wrong)")
        let overridden = try await runTTTCTL(["status", "--socket", daemon.socketPath], environment: environment)
        #expect(overridden.status == 0, "\(overridden)")
        #expect(try await daemon.stop() == 0)
    }

    @Test("--json and --socket are accepted after the subcommand, in any order and among the arguments")
    func optionsAfterSubcommand() async throws {
        let (daemon, _) = try await startDaemon()
        let socket = daemon.socketPath
        let add = try await runTTTCTL(["accounts", "add", "--json", "--socket", socket, "carol", "dan"])
        #expect(add.status == 0, "\(add)")
        #expect((try add.json() as? [String: Any])?["added"] as? [String] == ["carol", "dan"], "\(add)")
        let list = try await runTTTCTL(["accounts", "list", "--socket", socket, "--json"])
        #expect(list.status == 0, "\(list)")
        #expect((try list.json() as? [[String: Any]])?.count == 2, "\(list)")
        let status = try await runTTTCTL(["status", "--json", "--socket=\(socket)"])
        #expect(status.status == 0, "\(status)")
        #expect((try status.json() as? [String: Any])?["accounts"] as? Int == 2, "\(status)")
        let remove = try await runTTTCTL(["accounts", "remove", "dan", "--socket", socket, "--json"])
        #expect(remove.status == 0, "\(remove)")
        #expect((try remove.json() as? [String: Any])?["removed"] as? [String] == ["dan"], "\(remove)")
        #expect(try await daemon.stop() == 0)
    }

    @Test("every account added has its account_added event, committed with it")
    func eventsWithAccounts() async throws {
        let (daemon, database) = try await startDaemon()
        #expect(try await daemon.ctl(["accounts", "add", "a1", "a2", "a3"]).status == 0)
        #expect(try await daemon.ctl(["accounts", "add", "a3", "a4"]).status == 0)
        #expect(try await daemon.ctl(["accounts", "add", "bad-one", "a5"]).status == 1)
        let file = daemon.directory.file("list.txt")
        try (0..<50).map { "imp_\($0)" }.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try await daemon.ctl(["accounts", "import", file]).status == 0)
        try await expectEventsMatchAccounts(database, 54)
        let payload = try await database.psql("SELECT payload->>'username' FROM events WHERE username = 'a4'")
        #expect(payload == "a4")
        #expect(try await daemon.stop() == 0)
    }

    // MARK: Helpers

    private func startDaemon() async throws -> (DaemonProcess, TestDatabase) {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database)
        try await daemon.start()
        return (daemon, database)
    }

    private func usernames(_ daemon: DaemonProcess) async throws -> [String] {
        let list = try await daemon.ctl(["accounts", "list", "--json"])
        guard list.status == 0, let rows = try list.json() as? [[String: Any]] else { throw HarnessError("accounts list failed: \(list)") }
        return rows.compactMap { $0["username"] as? String }
    }

    private func account(_ daemon: DaemonProcess, _ name: String) async throws -> [String: Any]? {
        let list = try await daemon.ctl(["accounts", "list", "--json"])
        return (try list.json() as? [[String: Any]])?.first { $0["username"] as? String == name }
    }

    /// One account_added event per account, each written by the account's own transaction: now() is
    /// the transaction's start time, so the event's created_at equals the account's added_at.
    private func expectEventsMatchAccounts(_ database: TestDatabase, _ count: Int,
                                           sourceLocation: SourceLocation = #_sourceLocation) async throws {
        #expect(try await database.psql("SELECT count(*) FROM accounts") == "\(count)", sourceLocation: sourceLocation)
        #expect(try await database.psql("SELECT count(*) FROM events WHERE type = 'account_added'") == "\(count)",
                sourceLocation: sourceLocation)
        let matched = try await database.psql("""
            SELECT count(*) FROM accounts a
            JOIN events e ON e.type = 'account_added' AND e.username = a.username AND e.created_at = a.added_at
            """)
        #expect(matched == "\(count)", "each account's event must commit in the same transaction", sourceLocation: sourceLocation)
    }
}
