import CShims
import Synchronization
import TTTDomain

/// Who is on the other end of a control connection, from SO_PEERCRED (the kernel's word, not theirs).
struct Peer: Sendable, CustomStringConvertible {
    let pid: Int32
    let uid: UInt32
    let gid: UInt32
    /// Nil when the user is in neither group: every request is then `forbidden`.
    let role: Role?
    let name: String

    var description: String { "\(name) (uid \(uid), pid \(pid))" }
}

/// Maps uids to roles with the configured groups. Group membership is read from the system at each
/// connection, so adding someone to `tttd-admin` takes effect without restarting tttd.
final class RoleResolver: Sendable {
    struct Groups: Sendable, Equatable {
        var adminName: String
        var viewerName: String
        var admin: UInt32?
        var viewer: UInt32?
    }

    private let groups: Mutex<Groups>

    init(adminGroup: String, viewerGroup: String) {
        groups = Mutex(Self.resolve(adminGroup: adminGroup, viewerGroup: viewerGroup))
    }

    static func resolve(adminGroup: String, viewerGroup: String) -> Groups {
        func gid(_ name: String) -> UInt32? {
            let id = ttt_group_id(name)
            return id >= 0 ? UInt32(id) : nil
        }
        return Groups(adminName: adminGroup, viewerName: viewerGroup, admin: gid(adminGroup), viewer: gid(viewerGroup))
    }

    var current: Groups { groups.withLock { $0 } }

    func update(adminGroup: String, viewerGroup: String) {
        let resolved = Self.resolve(adminGroup: adminGroup, viewerGroup: viewerGroup)
        groups.withLock { $0 = resolved }
    }

    func peer(from credentials: ttt_ucred) -> Peer {
        let uid = credentials.uid
        var nameBuffer = [CChar](repeating: 0, count: 256)
        let name = ttt_user_name(uid, &nameBuffer, nameBuffer.count) == 0
            ? String(decoding: nameBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            : "uid \(uid)"
        return Peer(pid: credentials.pid, uid: uid, gid: credentials.gid, role: role(uid: uid, gid: credentials.gid), name: name)
    }

    func role(uid: UInt32, gid: UInt32) -> Role? {
        if uid == 0 { return .admin }
        let groups = current
        var memberOf: Set<UInt32> = [gid]
        var buffer = [UInt32](repeating: 0, count: 1024)
        let count = ttt_user_groups(uid, &buffer, Int32(buffer.count))
        if count > 0 { memberOf.formUnion(buffer.prefix(Int(count))) }
        if let admin = groups.admin, memberOf.contains(admin) { return .admin }
        if let viewer = groups.viewer, memberOf.contains(viewer) { return .viewer }
        return nil
    }
}
