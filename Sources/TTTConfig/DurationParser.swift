/// The configuration's duration syntax: an integer and a unit (`500ms`, `30s`, `2m`, `1h`, `90d`),
/// or several from the largest unit down (`1h30m`). Integers only, so that what the operator wrote
/// is exactly what runs, and `format` gives back the same text.
public enum DurationParser {
    /// Units from the largest down; `ms` is listed before `m` so that the longer suffix wins.
    private static let units: [(suffix: String, milliseconds: Int64)] = [
        ("d", 86_400_000), ("h", 3_600_000), ("ms", 1), ("m", 60_000), ("s", 1_000),
    ]
    private static let rank: [String: Int] = ["d": 0, "h": 1, "m": 2, "s": 3, "ms": 4]

    public static func parse(_ text: String) -> Duration? {
        var rest = Substring(text.trimmingWhitespace())
        guard !rest.isEmpty else { return nil }
        var total: Int64 = 0
        var lastRank = -1
        while !rest.isEmpty {
            let digits = rest.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, digits.count <= 15, let amount = Int64(digits) else { return nil }
            rest = rest.dropFirst(digits.count)
            guard let unit = units.first(where: { rest.hasPrefix($0.suffix) }),
                  let unitRank = rank[unit.suffix], unitRank > lastRank
            else { return nil }
            rest = rest.dropFirst(unit.suffix.count)
            lastRank = unitRank
            let (part, overflow1) = amount.multipliedReportingOverflow(by: unit.milliseconds)
            let (sum, overflow2) = total.addingReportingOverflow(part)
            guard !overflow1, !overflow2 else { return nil }
            total = sum
        }
        return .milliseconds(total)
    }

    /// The shortest text `parse` reads back as `d` (to the millisecond): `90d`, `1h30m`, `500ms`.
    public static func format(_ d: Duration) -> String {
        let (seconds, attoseconds) = d.components
        var milliseconds = seconds * 1_000 + attoseconds / 1_000_000_000_000_000
        guard milliseconds != 0 else { return "0s" }
        let sign = milliseconds < 0 ? "-" : ""
        milliseconds = abs(milliseconds)
        var parts: [String] = []
        for (suffix, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            let count = milliseconds / size
            if count > 0 { parts.append("\(count)\(suffix)") }
            milliseconds %= size
        }
        return sign + parts.joined()
    }
}

extension StringProtocol {
    /// Without leading and trailing whitespace and newlines (no Foundation needed).
    func trimmingWhitespace() -> String {
        guard let first = firstIndex(where: { !$0.isWhitespace }),
              let last = lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(self[first...last])
    }
}
