import Foundation
import TTTDomain

/// What a server said, made fit for a reason in a log line, `tttctl` or an event: one short line,
/// never the key that was sent.
public enum ServerText {
    /// One line of what the server said: OpenAI's `error.message` (or FastAPI's `detail`, or a bare
    /// `message`) when it answered in JSON, the title of an HTML page, else the start of the body.
    public static func snippet(_ body: [UInt8]) -> String {
        if let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] {
            if let error = object["error"] as? [String: Any], let message = error["message"] as? String {
                return oneLine(message)
            }
            if let message = (object["error"] ?? object["detail"] ?? object["message"]) as? String {
                return oneLine(message)
            }
        }
        if let title = htmlTitle(body) { return "an HTML page: \(title)" }
        let text = oneLine(String(decoding: body.prefix(800), as: UTF8.self))
        return text.isEmpty ? "(empty body)" : text
    }

    /// The `<title>` of an HTML page (a proxy's error page, a login wall), if it has one.
    public static func htmlTitle(_ body: [UInt8]) -> String? {
        let text = String(decoding: body.prefix(4096), as: UTF8.self)
        guard let open = text.range(of: "<title>", options: .caseInsensitive),
              let close = text.range(of: "</title>", options: .caseInsensitive, range: open.upperBound..<text.endIndex)
        else { return nil }
        let title = oneLine(String(text[open.upperBound..<close.lowerBound]))
        return title.isEmpty ? nil : title
    }

    /// Whitespace and line breaks folded into single spaces, at most 200 characters.
    public static func oneLine(_ text: String) -> String {
        let words = text.split(whereSeparator: { $0.isWhitespace || $0.isNewline })
        return String(words.joined(separator: " ").prefix(200))
    }

    /// `text` without `secret` (an API key a server echoed back), even where a cut to length kept
    /// only its start.
    public static func redact(_ text: String, secret: String?) -> String {
        guard let secret, !secret.isEmpty else { return text }
        let redacted = text.replacingOccurrences(of: secret, with: "[redacted]")
        for length in stride(from: min(secret.count - 1, redacted.count), through: 4, by: -1)
        where redacted.hasSuffix(secret.prefix(length)) {
            return redacted.dropLast(length) + "[redacted]"
        }
        return redacted
    }

    /// "7", "0.5": whole seconds without decimals.
    public static func seconds(_ duration: Duration) -> String {
        let seconds = duration.asSeconds
        return seconds == seconds.rounded() ? "\(Int(seconds))" : String(format: "%.1f", seconds)
    }
}
