import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("tttctl against a stalled daemon")
struct ClientTimeoutTests {
    @Test("a socket that accepts but never answers: exit 3 after TTTCTL_TIMEOUT, naming the problem")
    func stalledDaemon() async throws {
        let directory = try TemporaryDirectory()
        let path = directory.file("stalled.sock")
        // Listens (the kernel completes connections from the backlog) but never reads or answers.
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: path.utf8) }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        #expect(bound == 0)
        #expect(listen(fd, 4) == 0)
        var environment = ProcessInfo.processInfo.environment
        environment["TTTCTL_TIMEOUT"] = "1"
        let result = try await runTTTCTL(["status", "--socket", path], environment: environment)
        #expect(result.status == 3, "\(result)")
        #expect(result.stderr.contains("no answer from tttd within 1 s"), "\(result)")
    }
}
