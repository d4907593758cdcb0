import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Users and groups from scripts/test-users: ttt-test-admin (admins + viewers), ttt-test-viewer
/// (viewers), ttt-test-outsider (neither). The daemon's config names ttt-test-admins / ttt-test-viewers.
@Suite("roles from peer credentials")
struct RoleTests {
    @Test("an admin can add, a viewer can list but not add, an outsider is refused")
    func roles() async throws {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database)
        try await daemon.start()

        let admin = try await daemon.ctl(["accounts", "add", "@alice", "--json"], as: "ttt-test-admin")
        #expect(admin.status == 0, "\(admin)")
        #expect((try admin.json() as? [String: Any])?["added"] as? [String] == ["alice"])

        let viewerList = try await daemon.ctl(["accounts", "list", "--json"], as: "ttt-test-viewer")
        #expect(viewerList.status == 0, "\(viewerList)")
        #expect((try viewerList.json() as? [[String: Any]])?.first?["username"] as? String == "alice")

        let viewerAdd = try await daemon.ctl(["accounts", "add", "@bob"], as: "ttt-test-viewer")
        #expect(viewerAdd.status == 1, "\(viewerAdd)")
        #expect(viewerAdd.stderr.contains("needs the admin role"))

        // The socket is 0660 with the viewer group: the file system already keeps the outsider out.
        let outsider = try await daemon.ctl(["status"], as: "ttt-test-outsider")
        #expect(outsider.status == 3, "\(outsider)")
        #expect(outsider.stderr.contains("permission denied"))
        #expect(outsider.stderr.contains(daemon.socketPath))

        // And if an operator opens the socket to everyone, the daemon itself still refuses.
        chmod(daemon.socketPath, 0o666)
        let refused = try await daemon.ctl(["accounts", "list"], as: "ttt-test-outsider")
        #expect(refused.status == 1, "\(refused)")
        #expect(refused.stderr.contains("not allowed to use tttd"))

        let still = try await daemon.ctl(["accounts", "list", "--json"])
        #expect((try still.json() as? [[String: Any]])?.count == 1, "the refused requests changed nothing")
        #expect(try await daemon.stop() == 0)
    }

    @Test("the socket is created mode 0660 and owned by the viewer group")
    func socketMode() async throws {
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database)
        try await daemon.start()
        var info = stat()
        #expect(stat(daemon.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o660)
        let group = getgrgid(info.st_gid).map { String(cString: $0.pointee.gr_name) }
        #expect(group == "ttt-test-viewers")
        #expect(try await daemon.stop() == 0)
    }
}
