import Foundation
import TTTDomain

/// `Retry-After` (RFC 9110, section 10.2.3), as every client of tttd's reads it: TikTok's, the ASR's,
/// the model's, a webhook receiver's.
public enum RetryAfter {
    /// The longest delay read from the header. A wilder value — a broken server's, a proxy's, a
    /// hostile one's — must neither trap nor park work for years; each caller caps it lower where a
    /// day is already too long.
    public static let ceiling = Duration.seconds(86_400)

    /// Delay-seconds (a fraction too, as some servers send) or an HTTP date in any of the three
    /// formats a recipient must accept; nil when it is neither. Between zero (a date in the past)
    /// and `ceiling`.
    public static func parse(_ value: String, now: Date = Date()) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if isDelaySeconds(trimmed), let seconds = Double(trimmed) { return clamped(seconds) }
        return HTTPDate.secondsSince1970(trimmed, now: now).map { clamped(Double($0) - now.timeIntervalSince1970) }
    }

    /// Digits with at most one decimal point: not a sign, an exponent, `inf` or a hexadecimal float,
    /// which `Double` would also read.
    private static func isDelaySeconds(_ text: String) -> Bool {
        var points = 0
        var digits = 0
        for byte in text.utf8 {
            if byte == UInt8(ascii: ".") { points += 1 } else if byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") { digits += 1 } else { return false }
        }
        return digits > 0 && points <= 1
    }

    private static func clamped(_ seconds: Double) -> Duration {
        .milliseconds(Int64((min(max(0, seconds), ceiling.asSeconds) * 1000).rounded(.up)))
    }
}
