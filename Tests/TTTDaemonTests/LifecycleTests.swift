import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("systemd lifecycle")
struct LifecycleTests {
    @Test("READY, STATUS, WATCHDOG and STOPPING reach NOTIFY_SOCKET, then exit 0")
    func notifyProtocol() async throws {
        let database = try await TestDatabase.create()
        // 400 ms: tttd pings every 200 ms, so the test sees WATCHDOG=1 quickly.
        let daemon = try DaemonProcess(database: database, environment: ["WATCHDOG_USEC": "400000"])
        try await daemon.start()
        #expect(daemon.notify.messages.joined(separator: "\n").contains("STATUS="))
        try await daemon.notify.waitFor("WATCHDOG=1")

        // STATUS= follows the state: adding an account changes the count.
        let added = try await daemon.ctl(["accounts", "add", "@alice"])
        #expect(added.status == 0, "\(added)")
        let status = try await daemon.notify.waitForPrefix("STATUS=1 accounts")
        #expect(status.hasPrefix("STATUS=1 accounts, 0 lives, 0 pipelines"))

        daemon.signal(SIGTERM)
        try await daemon.notify.waitFor("STOPPING=1")
        let code = try await daemon.waitForExit()
        #expect(code == 0, "\(daemon.log)")
    }

    @Test("SIGINT also stops gracefully with exit 0, and the socket file is removed")
    func sigint() async throws {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database)
        try await daemon.start()
        #expect(FileManager.default.fileExists(atPath: daemon.socketPath))
        daemon.signal(SIGINT)
        #expect(try await daemon.waitForExit() == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
    }

    @Test("a second tttd on the same socket refuses to start and names the path")
    func secondDaemonRefused() async throws {
        let database = try await TestDatabase.create()
        let first = try DaemonProcess(database: database)
        try await first.start()
        let second = try DaemonProcess(database: database, directory: first.directory)
        try await second.start(waitForReady: false)
        let code = try await second.waitForExit()
        #expect(code == 1)
        #expect(second.log.contains("another tttd is already listening on \(first.socketPath)"), "\(second.log)")
        // The first one still serves.
        #expect(try await first.ctl(["status"]).status == 0)
        #expect(try await first.stop() == 0)
    }

    @Test("a stale socket file left by a killed tttd is replaced")
    func staleSocketReplaced() async throws {
        let database = try await TestDatabase.create()
        let first = try DaemonProcess(database: database)
        try await first.start()
        first.signal(SIGKILL)
        _ = try await first.waitForExit()
        #expect(FileManager.default.fileExists(atPath: first.socketPath))
        let second = try DaemonProcess(database: database, directory: first.directory)
        try await second.start()
        #expect(try await second.ctl(["status"]).status == 0)
        #expect(try await second.stop() == 0)
    }

    @Test("kill -9 then start again: the accounts are intact")
    func killNineKeepsAccounts() async throws {
        let database = try await TestDatabase.create()
        let first = try DaemonProcess(database: database)
        try await first.start()
        #expect(try await first.ctl(["accounts", "add", "alice", "@Bob.B", "carol_3"]).status == 0)
        first.signal(SIGKILL)
        #expect(try await first.waitForExit() == 128 + SIGKILL)

        let second = try DaemonProcess(database: database)
        try await second.start()
        let list = try await second.ctl(["accounts", "list", "--json"])
        let names = (try list.json() as? [[String: Any]])?.compactMap { $0["username"] as? String }
        #expect(names == ["alice", "bob.b", "carol_3"])
        #expect(try await second.stop() == 0)
    }
}
