import CShims
import CSystemd
#if canImport(Glibc)
import Glibc
#endif

/// The sd_notify(3) protocol (sent without blocking, see ttt_notify): tells systemd when tttd is ready, what it is doing, that it is alive, and that it stops.
/// Every call is a no-op when `NOTIFY_SOCKET` is unset (tttd run by hand).
public struct SystemdNotifier: Sendable {
    public init() {}

    /// True when systemd (or a test) listens for notifications.
    public var isEnabled: Bool { getenvString("NOTIFY_SOCKET") != nil }

    public func ready(status: String) { send("READY=1\nSTATUS=\(oneLine(status))") }
    public func status(_ text: String) { send("STATUS=\(oneLine(text))") }
    public func watchdog() { send("WATCHDOG=1") }
    public func stopping(status: String) { send("STOPPING=1\nSTATUS=\(oneLine(status))") }
    public func reloading(status: String) { send("RELOADING=1\nSTATUS=\(oneLine(status))") }
    /// Asks systemd for more start-up time while tttd waits for its database.
    public func extendTimeout(seconds: Int) { send("EXTEND_TIMEOUT_USEC=\(seconds * 1_000_000)") }

    /// Half of `WATCHDOG_USEC`, the interval sd_watchdog_enabled(3) advises, or nil when no watchdog is set.
    public static func watchdogInterval() -> Duration? {
        var usec: UInt64 = 0
        guard sd_watchdog_enabled(0, &usec) > 0, usec > 0 else { return nil }
        return .microseconds(Int64(usec / 2))
    }

    private func send(_ state: String) {
        _ = ttt_notify(state)
    }

    private func oneLine(_ text: String) -> String {
        String(text.map { $0.isNewline ? " " : $0 })
    }

    private func getenvString(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        return String(cString: value)
    }
}
