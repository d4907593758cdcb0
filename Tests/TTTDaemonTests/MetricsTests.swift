import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// The Prometheus endpoint (`metrics.listen`) of a real tttd watching tttsim, scraped over HTTP.
@Suite("metrics endpoint")
struct MetricsTests {
    static func config(_ sim: SimProcess, port: Int) -> String {
        DetectionTests.config(sim, extra: """
            metrics:
              listen: "127.0.0.1:\(port)"
            """)
    }

    @Test("GET /metrics exports the tttd_ metrics in Prometheus's text format: checks by result, lives open, detection latency")
    func scrape() async throws {
        let sim = SimProcess(accounts: 1)
        try await sim.start()
        let database = try await TestDatabase.create()
        let port = try freeTCPPort()
        let daemon = try DaemonProcess(database: database, extraConfig: Self.config(sim, port: port))
        let parentHad = try listeningTCPPorts(of: getpid())
        try await daemon.start()
        let tttdPorts = try listeningTCPPorts(of: daemon.pid), ownPorts = try listeningTCPPorts(of: getpid())
        #expect(try ownListeningTCPPorts(of: daemon.pid, parentHad: parentHad) == [port],
                "tttd: \(tttdPorts), this process before: \(parentHad), now: \(ownPorts)")
        #expect(try await daemon.ctl(["accounts", "add", "sim0"]).status == 0)
        let follow = try await FollowProcess(daemon: daemon, arguments: ["sim0"])
        try await sim.waitForRequests(to: "/api-live/user/room/", atLeast: 1)
        _ = try await sim.goLive("sim0")
        _ = try await follow.next("live_started")

        // The gauge follows the database every 5 s: scrape until it shows the live, with a deadline.
        var exposition = try await Exposition(scraping: port)
        let deadline = Date().addingTimeInterval(60)
        while exposition.value("tttd_lives_open") != 1 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(300))
            exposition = try await Exposition(scraping: port)
        }
        #expect(exposition.value("tttd_lives_open") == 1, "\(exposition.text)")
        #expect(exposition.value("tttd_accounts_watched") == 1)
        // No ASR request yet: the limit is transcription.max_pipelines (50 by default).
        #expect(exposition.value("tttd_asr_concurrency_limit") == 50, "\(exposition.text)")
        #expect(exposition.samples.allSatisfy { $0.name.hasPrefix("tttd_") }, "\(exposition.text)")
        for (family, type) in ["tttd_checks_total": "counter", "tttd_lives_open": "gauge",
                               "tttd_detection_latency_seconds": "histogram", "tttd_egress_rate_ratio": "gauge",
                               "tttd_pipelines": "gauge", "tttd_deliveries_pending": "gauge"] {
            #expect(exposition.types[family] == type, "\(family)")
        }
        #expect(Set(exposition.types.keys) == Set(exposition.helps.keys), "every family has its HELP line")
        let live = exposition.value("tttd_checks_total", ["egress": "direct", "result": "live"]) ?? 0
        let offline = exposition.value("tttd_checks_total", ["egress": "direct", "result": "offline"]) ?? 0
        #expect(live >= 1 && offline >= 1, "\(exposition.text)")
        #expect(exposition.value("tttd_checks_total", ["egress": "direct", "result": "not_found"]) == 0)
        #expect(exposition.value("tttd_detection_latency_seconds_count") == 1)
        #expect(exposition.value("tttd_egress_rate_ratio", ["egress": "direct"]) == 1)

        // Checks go on: the counter grows.
        let checked = exposition.total("tttd_checks_total")
        let seen = try await sim.requests(to: "/api-live/user/room/")
        try await sim.waitForRequests(to: "/api-live/user/room/", atLeast: seen + 2)
        let later = try await Exposition(scraping: port)
        #expect(later.total("tttd_checks_total") > checked)

        #expect(try await httpStatus("GET", port: port, path: "/") == 404)
        #expect(try await httpStatus("GET", port: port, path: "/metricsx") == 404)
        #expect(try await httpStatus("POST", port: port, path: "/metrics") == 404)
        #expect(try await daemon.stop() == 0)
    }

    @Test("without metrics.listen tttd listens on no TCP port")
    func offByDefault() async throws {
        let sim = SimProcess(accounts: 1)
        try await sim.start()
        let database = try await TestDatabase.create()
        let daemon = try DaemonProcess(database: database, extraConfig: DetectionTests.config(sim))
        let parentHad = try listeningTCPPorts(of: getpid())
        try await daemon.start()
        #expect(try await daemon.ctl(["accounts", "add", "sim0"]).status == 0)
        try await sim.waitForRequests(to: "/api-live/user/room/", atLeast: 1)
        #expect(try ownListeningTCPPorts(of: daemon.pid, parentHad: parentHad).isEmpty)
        #expect(try await daemon.stop() == 0)
    }

    @Test("a metrics.listen address already taken stops tttd at start, naming the key")
    func addressInUse() async throws {
        let sim = SimProcess(accounts: 0)
        try await sim.start()
        let database = try await TestDatabase.create()
        let taken = try TCPListener()
        let daemon = try DaemonProcess(database: database, extraConfig: Self.config(sim, port: taken.port))
        try await daemon.start(waitForReady: false)
        #expect(try await daemon.waitForExit() == 1)
        #expect(daemon.log.contains("cannot listen on metrics.listen 127.0.0.1:\(taken.port): Address already in use"), "\(daemon.log)")
    }
}

/// A scrape, parsed strictly: every line is a `# HELP`, a `# TYPE` or a sample `name{labels} value`.
struct Exposition {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    let text: String
    var samples: [Sample] = []
    var types: [String: String] = [:]
    var helps: [String: String] = [:]

    init(scraping port: Int) async throws {
        let result = try await runCommand("/usr/bin/curl", [
            "-s", "-o", "-", "-w", "\n%{http_code} %{content_type}", "http://127.0.0.1:\(port)/metrics"])
        guard result.status == 0, let split = result.stdout.lastIndex(of: "\n") else {
            throw HarnessError("curl /metrics failed: \(result)")
        }
        let trailer = result.stdout[result.stdout.index(after: split)...]
        guard trailer == "200 text/plain; version=0.0.4; charset=utf-8" else { throw HarnessError("GET /metrics: \(trailer)") }
        try self.init(parsing: String(result.stdout[..<split]))
    }

    init(parsing text: String) throws {
        self.text = text
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# HELP ") {
                let parts = line.dropFirst(7).split(separator: " ", maxSplits: 1)
                guard parts.count == 2 else { throw HarnessError("bad HELP line: \(line)") }
                helps[String(parts[0])] = String(parts[1])
            } else if line.hasPrefix("# TYPE ") {
                let parts = line.dropFirst(7).split(separator: " ")
                guard parts.count == 2, ["counter", "gauge", "histogram", "summary", "untyped"].contains(parts[1]) else {
                    throw HarnessError("bad TYPE line: \(line)")
                }
                types[String(parts[0])] = String(parts[1])
            } else {
                samples.append(try Self.sample(line))
            }
        }
        for sample in samples {
            let family = types[sample.name] != nil ? sample.name
                : sample.name.replacing(/_(bucket|sum|count)$/, with: "")
            guard types[family] != nil else { throw HarnessError("sample without a TYPE line: \(sample.name)") }
        }
    }

    private static func sample(_ line: Substring) throws -> Sample {
        guard let match = line.wholeMatch(of: /([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/),
              let value = Double(match.3) ?? (match.3 == "+Inf" ? .infinity : nil) else {
            throw HarnessError("bad sample line: \(line)")
        }
        var labels = [String: String]()
        var rest = match.2.map(String.init) ?? ""
        while !rest.isEmpty {
            guard let pair = rest.prefixMatch(of: /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/) else {
                throw HarnessError("bad labels in: \(line)")
            }
            labels[String(pair.1)] = String(pair.2)
            rest.removeFirst(pair.0.count)
        }
        return Sample(name: String(match.1), labels: labels, value: value)
    }

    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        samples.first { $0.name == name && $0.labels == labels }?.value
    }

    func total(_ name: String) -> Double {
        samples.filter { $0.name == name }.reduce(0) { $0 + $1.value }
    }
}

/// The status of one request to the endpoint.
func httpStatus(_ method: String, port: Int, path: String) async throws -> Int {
    let result = try await runCommand("/usr/bin/curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method,
                                                       "http://127.0.0.1:\(port)\(path)"])
    return Int(result.stdout) ?? 0
}

/// A listening TCP socket on 127.0.0.1, on a port the kernel chose; closed when the value goes away.
/// Close-on-exec: a tttd that another test starts meanwhile must not inherit it (it would then
/// seem to listen on this port, and keep it bound).
final class TCPListener: @unchecked Sendable {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw HarnessError("socket failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw HarnessError("cannot listen on 127.0.0.1: \(String(cString: strerror(errno)))")
        }
        self.fd = fd
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}

/// A port that was free a moment ago (the kernel's choice for a socket closed since).
func freeTCPPort() throws -> Int { try TCPListener().port }

/// The TCP ports tttd listens on itself: not the listening sockets it inherited from this test
/// process, where other suites run servers while tttd is spawned — those open when it was started
/// (`parentHad`, read just before) or now; a server opened and closed in between would still count.
func ownListeningTCPPorts(of pid: Int32, parentHad: Set<Int>) throws -> Set<Int> {
    try listeningTCPPorts(of: pid).subtracting(parentHad).subtracting(listeningTCPPorts(of: getpid()))
}

/// The TCP ports a process listens on: its sockets (from /proc/PID/fd) in LISTEN state in /proc/net/tcp{,6}.
func listeningTCPPorts(of pid: Int32) throws -> Set<Int> {
    let fds = "/proc/\(pid)/fd"
    var inodes = Set<String>()
    for fd in try FileManager.default.contentsOfDirectory(atPath: fds) {
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(fds)/\(fd)"),
           target.hasPrefix("socket:[") {
            inodes.insert(String(target.dropFirst(8).dropLast()))
        }
    }
    var ports = Set<Int>()
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        // Read to the end: String(contentsOfFile:) stops after 4 KB of a /proc file, ~27 sockets.
        guard let handle = FileHandle(forReadingAtPath: table) else { continue }
        defer { try? handle.close() }
        let text = String(decoding: try handle.readToEnd() ?? Data(), as: UTF8.self)
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ")
            // local_address is HEXIP:HEXPORT, st 0A is LISTEN, the inode is the tenth field.
            guard fields.count > 9, fields[3] == "0A", inodes.contains(String(fields[9])),
                  let port = fields[1].split(separator: ":").last.flatMap({ Int($0, radix: 16) }) else { continue }
            ports.insert(port)
        }
    }
    return ports
}
