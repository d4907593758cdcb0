import Foundation
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Checks of the files in `systemd/` with systemd's own tools: `systemd-analyze verify` (syntax,
/// known directives, executable paths), `systemd-analyze security` (the hardening score),
/// `systemd-sysusers` and `systemd-tmpfiles` (into a scratch root).
@Suite("systemd unit files")
struct UnitFileTests {
    /// The repository root: this file is `<root>/Tests/TTTSystemdTests/UnitFileTests.swift`.
    static let repoRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static var unitURL: URL { repoRoot.appendingPathComponent("systemd/tttd.service") }

    static let systemdAnalyze = "/usr/bin/systemd-analyze"

    struct Output {
        var status: Int32
        var text: String
        var lines: [String] { text.split(separator: "\n").map(String.init) }
    }

    /// Runs a program to completion; what it printed, standard output then standard error.
    static func run(_ executable: String, _ arguments: [String]) async throws -> Output {
        var environment = ProcessInfo.processInfo.environment
        environment["SYSTEMD_COLORS"] = "0"
        environment["SYSTEMD_PAGER"] = "cat"
        environment["SYSTEMD_LOG_COLOR"] = "0"
        let result = try await runCommand(executable, arguments, environment: environment)
        return Output(status: result.status, text: result.stdout + result.stderr)
    }

    /// A scratch folder, removed by the caller.
    static func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("ttt-unit-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func unitText() throws -> String {
        try String(contentsOf: unitURL, encoding: .utf8)
    }

    /// A copy of the unit named tttd.service whose ExecStart points at an existing executable:
    /// `verify` fails on a missing binary, and /usr/local/bin/tttd exists only once installed.
    static func verifiableCopy(in dir: URL, edit: (String) -> String = { $0 }) throws -> URL {
        let text = try unitText()
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasPrefix("ExecStart=") ? "ExecStart=/bin/true --config /etc/tttd/tttd.yaml" : String($0) }
            .joined(separator: "\n")
        let url = dir.appendingPathComponent("tttd.service")
        try edit(text).write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// What `systemd-analyze verify` says is wrong with the unit: its exit status when not 0, and
    /// every output line about tttd.service (unknown keys, unparsable values, missing executables
    /// are warnings with exit status 0; lines about other units of the host are not ours).
    static func verifyProblems(_ unit: URL) async throws -> [String] {
        let out = try await run(systemdAnalyze, ["verify", unit.path])
        var problems = out.lines.filter { $0.contains("tttd.service") }
        if out.status != 0 {
            problems.append("systemd-analyze verify exited with \(out.status): \(out.text)")
        }
        return problems
    }

    @Test func verifyFindsNoProblem() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let problems = try await Self.verifyProblems(try Self.verifiableCopy(in: dir))
        #expect(problems.isEmpty, "systemd-analyze verify: \(problems.joined(separator: "\n"))")
    }

    /// The check above means something only if verify reports mistakes: a misspelt directive, a
    /// bad value and a missing executable must each be caught.
    @Test(arguments: [
        ("RestrictRealtime=yes", "RestrictRealtim=yes"),
        ("Type=notify", "Type=notifyy"),
        ("ExecStart=/bin/true", "ExecStart=/nonexistent/tttd"),
    ])
    func verifyCatchesMistakes(original: String, broken: String) async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let unit = try Self.verifiableCopy(in: dir) { text in
            #expect(text.contains(original))
            return text.replacingOccurrences(of: original, with: broken)
        }
        let problems = try await Self.verifyProblems(unit)
        #expect(!problems.isEmpty, "verify found nothing wrong after \(original) → \(broken)")
    }

    @Test func securityExposureIsAtMostTwo() async throws {
        let out = try await Self.run(Self.systemdAnalyze, ["security", "--offline=true", Self.unitURL.path])
        let pattern = try Regex(#"Overall exposure level for tttd\.service: ([0-9]+(\.[0-9]+)?)"#)
        let line = out.lines.first { $0.contains("Overall exposure level") }
        let match = try line.flatMap { try pattern.firstMatch(in: $0) }
        let number = match?.output[1].substring.flatMap { Double($0) }
        #expect(number != nil, "no exposure level in: \(out.text)")
        if let number {
            #expect(number <= 2.0, "exposure \(number) > 2.0:\n\(out.lines.filter { $0.hasPrefix("✗") }.joined(separator: "\n"))")
        }
    }

    /// The directives tttd relies on, and the ones it must not have.
    @Test func unitKeepsWhatTttdNeeds() throws {
        var settings: [String: [String]] = [:]
        for raw in try Self.unitText().split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#"), !line.hasPrefix(";"), !line.hasPrefix("["),
                  let eq = line.firstIndex(of: "=") else { continue }
            settings[String(line[..<eq]), default: []].append(String(line[line.index(after: eq)...]))
        }
        func value(_ key: String) -> String? { settings[key]?.last }

        #expect(value("Type") == "notify")
        #expect(value("NotifyAccess") == "main")
        // `make install` rewrites this path to $(PREFIX)/bin/tttd.
        #expect(value("ExecStart") == "/usr/local/bin/tttd --config /etc/tttd/tttd.yaml")
        #expect(value("ExecReload") == "kill -HUP $MAINPID")
        #expect(value("WatchdogSec") == "30s")
        #expect(value("Restart") == "on-failure")
        #expect(value("User") == "tttd")
        #expect(value("Group") == "tttd")
        #expect(value("RuntimeDirectory") == "tttd")
        #expect(value("RuntimeDirectoryMode") == "0755")
        #expect(value("StateDirectory") == "tttd")
        #expect(value("UMask") == "0027")
        #expect(value("MemoryDenyWriteExecute") == "yes")
        // Peer uids on the control socket must be the real ones (role checks).
        #expect(settings["PrivateUsers"] == nil)
        // Outbound TCP and Unix sockets must stay allowed.
        let families = Set((settings["RestrictAddressFamilies"] ?? []).flatMap { $0.split(separator: " ").map(String.init) })
        #expect(families.isSuperset(of: ["AF_UNIX", "AF_INET", "AF_INET6"]))
        #expect(settings["PrivateNetwork"] == nil && settings["IPAddressDeny"] == nil)
        // A listed credential whose file is missing fails the start: examples only.
        #expect(settings["LoadCredential"] == nil)
    }

    /// sysusers creates the user and both groups; tmpfiles then creates the folders with their
    /// modes (and owners, when we may chown: as root).
    @Test func sysusersAndTmpfilesApply() async throws {
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let fm = FileManager.default
        for (source, folder) in [("tttd.sysusers", "usr/lib/sysusers.d"), ("tttd.tmpfiles", "usr/lib/tmpfiles.d")] {
            let dir = root.appendingPathComponent(folder)
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            try fm.copyItem(at: Self.repoRoot.appendingPathComponent("systemd/\(source)"),
                            to: dir.appendingPathComponent("tttd.conf"))
        }
        try fm.createDirectory(at: root.appendingPathComponent("etc"), withIntermediateDirectories: true)

        let sysusers = try await Self.run("/usr/bin/systemd-sysusers", ["--root=\(root.path)", "tttd.conf"])
        #expect(sysusers.status == 0, "systemd-sysusers: \(sysusers.text)")
        let passwd = try String(contentsOf: root.appendingPathComponent("etc/passwd"), encoding: .utf8)
        let group = try String(contentsOf: root.appendingPathComponent("etc/group"), encoding: .utf8)
        #expect(passwd.split(separator: "\n").contains { $0.hasPrefix("tttd:") && $0.hasSuffix(":/usr/sbin/nologin") })
        #expect(group.split(separator: "\n").contains { $0.hasPrefix("tttd:") })
        #expect(group.split(separator: "\n").contains { $0.hasPrefix("tttd-admin:") })

        let tmpfiles = try await Self.run("/usr/bin/systemd-tmpfiles", ["--root=\(root.path)", "--create", "tttd.conf"])
        let isRoot = getuid() == 0
        // Without root, chown is refused (and only that); any other complaint is a real problem.
        let complaints = tmpfiles.lines.filter { !(!isRoot && $0.contains("fchownat()") && $0.contains("Operation not permitted")) }
        #expect(complaints.isEmpty, "systemd-tmpfiles: \(complaints.joined(separator: "\n"))")
        if isRoot { #expect(tmpfiles.status == 0) }

        for (path, mode) in [("var/lib/tttd", 0o750), ("var/lib/tttd/evidence", 0o750), ("etc/tttd/credentials", 0o700)] {
            let attributes = try fm.attributesOfItem(atPath: root.appendingPathComponent(path).path)
            let actual = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
            #expect(actual == mode, "\(path): mode \(String(actual, radix: 8)), want \(String(mode, radix: 8))")
            if isRoot {
                // tmpfiles resolves names in the scratch root's passwd: tttd there, root for credentials.
                let owner = path.hasPrefix("etc/") ? "0" : passwd.split(separator: "\n")
                    .first { $0.hasPrefix("tttd:") }.map { String($0.split(separator: ":")[2]) }
                let uid = (attributes[.ownerAccountID] as? NSNumber).map { String($0.intValue) }
                #expect(uid == owner, "\(path): owner uid \(uid ?? "?"), want \(owner ?? "?")")
            }
        }
    }
}
