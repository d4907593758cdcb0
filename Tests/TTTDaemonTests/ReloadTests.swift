import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("SIGHUP reload")
struct ReloadTests {
    @Test("SIGHUP applies a new admin group at once, logs what changed, and keeps a restart-only key")
    func reloadRoles() async throws {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database)
        try await daemon.start()
        let before = try await daemon.ctl(["accounts", "add", "@alice"], as: "ttt-test-viewer")
        #expect(before.status == 1, "\(before)")

        // Viewers become admins; the socket path changes too, which only a restart may apply.
        var config = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        config = config.replacingOccurrences(of: "admin_group: ttt-test-admins", with: "admin_group: ttt-test-viewers")
        config = config.replacingOccurrences(of: "socket: \"\(daemon.socketPath)\"", with: "socket: \"\(daemon.socketPath).new\"")
        try config.write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        try await daemon.notify.waitFor("RELOADING=1")
        try await daemon.notify.waitForPrefix("STATUS=configuration reloaded")

        let after = try await daemon.ctl(["accounts", "add", "@alice"], as: "ttt-test-viewer")
        #expect(after.status == 0, "\(after)")
        try await daemon.waitForLog("what the reload changed and kept", timeout: 30) {
            $0.contains("configuration reloaded changed=control.admin_group") && $0.contains("only after a restart: control.socket")
        }
        #expect(FileManager.default.fileExists(atPath: daemon.socketPath), "the socket stays where it was")
        #expect(try await daemon.stop() == 0)
    }

    @Test("a broken file on SIGHUP changes nothing and says why")
    func reloadBrokenFile() async throws {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database)
        try await daemon.start()
        let original = try String(contentsOfFile: daemon.configPath, encoding: .utf8)
        try (original + "\ndetection:\n  interval: 3 parsecs\n").write(toFile: daemon.configPath, atomically: true, encoding: .utf8)
        daemon.signal(SIGHUP)
        try await daemon.notify.waitForPrefix("STATUS=configuration not reloaded")
        // The log line comes on tttd's stderr, the status on the notify socket: either may be read first.
        try await daemon.waitForLog("the reload's refusal naming detection.interval", timeout: 30) { $0.contains("detection.interval") }
        #expect(try await daemon.ctl(["accounts", "add", "@alice"], as: "ttt-test-admin").status == 0)
        #expect(try await daemon.stop() == 0)
    }
}
