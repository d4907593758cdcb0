import CSystemd
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Where log records go, decided once at start-up: sd_journal_sendv returns success even when journald
/// is absent (the record is silently lost), so tttd looks for the journal socket itself.
public enum LogDestination: Sendable {
    case journald
    case stderr

    public static func detect(journalSocket: String = "/run/systemd/journal/socket") -> LogDestination {
        access(journalSocket, W_OK) == 0 ? .journald : .stderr
    }
}

/// Bootstraps swift-log once for the process.
public enum LogBootstrap {
    public static func bootstrap(identifier: String, level: SharedLogLevel, destination: LogDestination = .detect()) {
        LoggingSystem.bootstrap { label in
            switch destination {
            case .journald: return JournalLogHandler(identifier: identifier, label: label, level: level)
            case .stderr: return StderrLogHandler(label: label, level: level)
            }
        }
    }
}

/// The level every handler reads, so that SIGHUP can change `log.level` without a restart.
public final class SharedLogLevel: Sendable {
    private let level: Mutex<Logger.Level>
    public init(_ level: Logger.Level) { self.level = Mutex(level) }
    public var value: Logger.Level { level.withLock { $0 } }
    public func set(_ new: Logger.Level) { level.withLock { $0 = new } }
}

extension Logger.Level {
    /// syslog(3) priority, as journald's PRIORITY= and sd-daemon's `<N>` prefix use it.
    public var syslogPriority: Int {
        switch self {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }
}

/// Metadata key `live_id` becomes the journal field `TTT_LIVE_ID=`, so `journalctl TTT_ACCOUNT=alice` works.
func journalFieldName(_ key: String) -> String? {
    var name = "TTT_"
    for scalar in key.unicodeScalars {
        switch scalar {
        case "a"..."z": name.unicodeScalars.append(Unicode.Scalar(scalar.value - 32)!)
        case "A"..."Z", "0"..."9", "_": name.unicodeScalars.append(scalar)
        case ".", "-": name.append("_")
        default: return nil
        }
    }
    return name.count > 4 && name.count <= 64 ? name : nil
}

func render(_ value: Logger.MetadataValue) -> String {
    switch value {
    case .string(let text): return text
    case .stringConvertible(let convertible): return convertible.description
    case .array(let values): return values.map(render).joined(separator: ",")
    case .dictionary(let values): return values.sorted { $0.key < $1.key }.map { "\($0.key)=\(render($0.value))" }.joined(separator: ",")
    }
}

public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    private let shared: SharedLogLevel
    private var override: Logger.Level?
    public var logLevel: Logger.Level {
        get { override ?? shared.value }
        set { override = newValue }
    }
    private let identifier: String
    private let label: String

    public init(identifier: String, label: String, level: SharedLogLevel) {
        self.identifier = identifier
        self.label = label
        self.shared = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields = [
            "MESSAGE=\(event.message)",
            "PRIORITY=\(event.level.syslogPriority)",
            "SYSLOG_IDENTIFIER=\(identifier)",
            "TTT_COMPONENT=\(label)",
        ]
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            if let name = journalFieldName(key) { fields.append("\(name)=\(render(value))") }
        }
        if event.level <= .debug {
            fields.append("CODE_FILE=\(event.file)")
            fields.append("CODE_LINE=\(event.line)")
            fields.append("CODE_FUNC=\(event.function)")
        }
        send(fields)
    }

    private func send(_ fields: [String]) {
        // Each field is one iovec "NAME=value"; values may hold newlines (the journal protocol allows it).
        var storage = fields.map { Array($0.utf8) }
        var vectors = [iovec]()
        vectors.reserveCapacity(storage.count)
        storage.withUnsafeMutableBufferPointer { buffers in
            for index in buffers.indices {
                buffers[index].withUnsafeMutableBytes { raw in
                    vectors.append(iovec(iov_base: raw.baseAddress, iov_len: raw.count))
                }
            }
            _ = sd_journal_sendv(vectors, Int32(vectors.count))
        }
    }
}

/// One line per record on stderr, prefixed `<N>` as sd-daemon(3) describes, so that a supervisor that
/// understands the prefix keeps the priority.
public struct StderrLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    private let shared: SharedLogLevel
    private var override: Logger.Level?
    public var logLevel: Logger.Level {
        get { override ?? shared.value }
        set { override = newValue }
    }
    private let label: String

    public init(label: String, level: SharedLogLevel) {
        self.label = label
        self.shared = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        var line = "<\(event.level.syslogPriority)>\(event.message)"
        if !merged.isEmpty {
            line += " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\(render($0.value))" }.joined(separator: " ")
        }
        line = String(line.map { $0.isNewline ? " " : $0 }) + "\n"
        var bytes = Array(line.utf8)
        bytes.withUnsafeMutableBytes { raw in
            var offset = 0
            while offset < raw.count {
                let written = write(2, raw.baseAddress! + offset, raw.count - offset)
                if written <= 0 { if errno == EINTR { continue } else { return } }
                offset += written
            }
        }
    }
}
