import Foundation
import TestSupport
import Testing

/// A database made by the previous release, migrated by the real tttd when it starts. The fixture,
/// Fixtures/schema-v2.sql, is that release's schema (version 2, from git at 8fbed91) with rows in
/// every table, written by scripts/make-upgrade-fixture.
///
/// (An older tttd meeting a newer schema refuses to start: DatabaseOutageTests.schemaTooNew.)
@Suite("upgrades")
struct UpgradeTests {
    static var fixture: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/schema-v2.sql").path
    }

    /// TikTok on a closed port: an account added during the test is checked without reaching out.
    static let config = """
        tiktok:
          web_url: "http://127.0.0.1:9"
          webcast_url: "http://127.0.0.1:9"
        transcription:
          enabled: false
        analysis:
          enabled: false
        """

    @Test("a database of the previous release: tttd migrates it at start, every row keeps its values, tttctl shows them")
    func previousRelease() async throws {
        let database = try await TestDatabase.create()
        let loaded = try await runCommand("/usr/bin/psql", [database.url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", Self.fixture])
        try #require(loaded.status == 0, "loading \(Self.fixture): \(loaded)")
        try #require(try await database.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations") == "1,2")
        // Their next checks are long past: detection would check the old accounts and lives at once
        // (and change them) while they are being compared.
        _ = try await database.psql("UPDATE accounts SET next_check_at = 'infinity'; UPDATE lives SET next_alive_check_at = 'infinity'")

        // Every row of every table of the old schema, on the old schema's columns.
        let tables = try await database.psql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).split(separator: "\n").map(String.init)
        #expect(tables == ["accounts", "deliveries", "events", "lives", "nodes", "pipelines", "schema_migrations", "transcripts"])
        var columns = [String: String]()
        var before = [String: Set<String>]()
        for table in tables {
            columns[table] = try await database.psql("""
                SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position)
                FROM information_schema.columns WHERE table_schema = 'public' AND table_name = \(sqlLiteral(table))
                """)
            before[table] = try await Self.rows(database, table: table, columns: columns[table] ?? "")
            #expect(before[table]?.isEmpty == false, "the fixture has no rows in \(table)")
        }

        let daemon = try DaemonProcess(database: database, extraConfig: Self.config)
        try await daemon.start()
        // Logged before READY=1, but read from its stderr by a thread of the harness's own.
        try await daemon.waitForLog("the migration", timeout: 30) { $0.contains("database schema migrated") }

        // The schema is the one a fresh database gets from this tttd: same versions, same tables,
        // columns, constraints, indexes, functions and triggers.
        let fresh = try await TestDatabase.create()
        let freshDaemon = try DaemonProcess(database: fresh, extraConfig: Self.config)
        try await freshDaemon.start()
        #expect(try await freshDaemon.stop() == 0)
        let versions = try await database.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")
        let latest = try await fresh.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations")
        #expect(versions == latest)
        #expect(versions.count > "1,2".count, "no migration after version 2: \(versions)")
        let upgradedSchema = try await Self.schema(database)
        let freshSchema = try await Self.schema(fresh)
        let sameSchema = upgradedSchema == freshSchema
        #expect(sameSchema, "the upgraded schema differs from a fresh one:\n\(Self.difference(upgradedSchema, freshSchema))")

        // tttd works on the old data: it lists it, shows a live with its transcripts, adds an account.
        let accounts = try await daemon.ctl(["accounts", "list", "--json"])
        let accountList = try #require(try accounts.json() as? [[String: Any]], "\(accounts)")
        #expect(Set(accountList.map { string($0["username"]) }) == ["alice_fr", "bob.live", "gone_user", "new.one_2"])
        let alice = accountList.first { string($0["username"]) == "alice_fr" }
        #expect(alice?["labels"] as? [String] == ["politique", "fr"], "\(accountList)")
        #expect(string(alice?["check_state"]) == "offline", "\(accountList)")
        #expect(accountList.first { string($0["username"]) == "bob.live" }?["live"] as? Bool == true, "\(accountList)")

        let lives = try await daemon.ctl(["lives", "--json"])
        let liveList = try #require(try lives.json() as? [[String: Any]], "\(lives)")
        #expect(Set(liveList.compactMap { $0["id"] as? Int }) == [1, 2, 3, 4], "\(liveList)")
        let debate = try #require(liveList.first { $0["id"] as? Int == 1 })
        #expect(string(debate["title"]) == "Débat : « l'immigration » ce soir")
        #expect(string(debate["status"]) == "ended" && debate["peak_viewers"] as? Int == 812, "\(debate)")
        #expect(string(liveList.first { $0["id"] as? Int == 2 }?["status"]) == "live", "\(liveList)")

        let show = try await daemon.ctl(["live", "show", "1", "--json"])
        let shown = try #require(try show.json() as? [String: Any], "\(show)")
        let transcripts = try #require(shown["transcripts"] as? [[String: Any]], "\(shown)")
        #expect(transcripts.compactMap { $0["seq"] as? Int } == [0, 1, 2, 3, 4], "\(transcripts)")
        #expect(string(transcripts.first?["text"]) == "Bonsoir à tous, ce soir on parle de l'immigration, un sujet qui fâche.")
        #expect(transcripts.first { $0["seq"] as? Int == 2 }?["flags"] as? [String] == ["filtered"], "\(transcripts)")
        #expect((shown["analyses"] as? [Any])?.isEmpty == true, "\(shown)")

        let pipelines = try await daemon.ctl(["pipelines", "--json"])
        let pipelineList = try #require(try pipelines.json() as? [[String: Any]], "\(pipelines)")
        #expect(pipelineList.map { $0["id"] as? Int } == [4], "the pipeline still open in the old database: \(pipelineList)")
        let alerts = try await daemon.ctl(["alerts", "--json"])
        #expect(alerts.status == 0, "\(alerts)")
        #expect((try alerts.json() as? [Any])?.isEmpty == true, "\(alerts)")

        let added = try await daemon.ctl(["accounts", "add", "carol"])
        #expect(added.status == 0, "\(added)")
        // After the old ids (the last account id used was 5).
        #expect(try await database.psql("SELECT id FROM accounts WHERE username = 'carol'") == "6")

        // Every old row is still there with its values; what was added: carol and her event (after
        // the old ids: the sequences came along), tttd's own node, the new versions.
        for table in tables {
            let after = try await Self.rows(database, table: table, columns: columns[table] ?? "")
            let lost = before[table, default: []].subtracting(after)
            #expect(lost.isEmpty, "\(table): rows lost or changed by the upgrade:\n\(lost.sorted().joined(separator: "\n"))")
            let appeared = after.subtracting(before[table, default: []])
            switch table {
            case "accounts": #expect(appeared.count == 1 && appeared.first?.contains(#""carol""#) == true, "\(appeared)")
            case "events": #expect(appeared.count == 1 && appeared.first?.hasPrefix(#"{"id": 15, "type": "account_added""#) == true, "\(appeared)")
            case "nodes": #expect(appeared.count == 1, "\(appeared)")
            case "schema_migrations": #expect(appeared.count == versions.split(separator: ",").count - 2, "\(appeared)")
            default: #expect(appeared.isEmpty, "\(table): rows appeared:\n\(appeared.sorted().joined(separator: "\n"))")
            }
        }
        // Windows of the old release wait for no analyzer: the upgrade does not send its history to the model.
        #expect(try await database.psql("SELECT string_agg(DISTINCT analysis_state, ',') FROM transcripts") == "not_needed")
        #expect(try await daemon.stop() == 0, "\(daemon.log)")
    }

    /// A table's rows as JSON objects of the given columns.
    static func rows(_ database: TestDatabase, table: String, columns: String) async throws -> Set<String> {
        let text = try await database.psql("SELECT to_jsonb(t)::text FROM (SELECT \(columns) FROM \(table)) t")
        return Set(text.split(separator: "\n").map(String.init))
    }

    /// `pg_dump --schema-only`, without the lines that differ between two dumps of one schema.
    static func schema(_ database: TestDatabase) async throws -> [String] {
        let dump = try await runCommand("\(TestEnvironment.pgBin)/pg_dump",
                                        ["--schema-only", "--no-owner", "--no-privileges", database.url])
        guard dump.status == 0 else { throw HarnessError("pg_dump \(database.name): \(dump)") }
        // pg_dump ≥ 15.14 frames its output with \restrict KEY … \unrestrict KEY, a new key each time.
        return dump.stdout.split(separator: "\n").map(String.init).filter {
            !$0.hasPrefix("\\restrict") && !$0.hasPrefix("\\unrestrict")
        }
    }

    /// The lines of the upgraded dump missing from the fresh one (-) and the other way round (+).
    static func difference(_ upgraded: [String], _ fresh: [String]) -> String {
        let only = upgraded.filter { !fresh.contains($0) }.map { "- " + $0 }
        let extra = fresh.filter { !upgraded.contains($0) }.map { "+ " + $0 }
        return only.isEmpty && extra.isEmpty ? "the same lines in another order" : (only + extra).joined(separator: "\n")
    }
}
