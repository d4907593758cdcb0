import Foundation

/// Why a value is refused; the message is what follows `<source>: <key>: ` in a problem.
struct Invalid: Error {
    var message: String
    init(_ message: String) { self.message = message }
}

/// The parsers of every kind of value the configuration holds. Each quotes the offending text
/// (with any URL password hidden) and says what would be accepted. None is used for secrets.
enum Parse {
    static func duration(_ text: String) throws(Invalid) -> Duration {
        guard let value = DurationParser.parse(text) else {
            throw Invalid("\"\(text)\" is not a duration (use 500ms, 30s, 2m, 1h, 90d)")
        }
        return value
    }

    static func positiveDuration(_ text: String) throws(Invalid) -> Duration {
        let value = try duration(text)
        guard value > .zero else { throw Invalid("must be longer than 0, not \(text)") }
        return value
    }

    static func retention(_ text: String) throws(Invalid) -> RetentionPeriod {
        if text.trimmingWhitespace().lowercased() == "forever" { return .forever }
        guard let value = DurationParser.parse(text) else {
            throw Invalid("\"\(text)\" is not a duration or forever (use 90d, 12h, forever)")
        }
        guard value > .zero else { throw Invalid("must be longer than 0, not \(text) (use forever to keep everything)") }
        return .duration(value)
    }

    static func integer(_ text: String, atLeast minimum: Int) throws(Invalid) -> Int {
        guard let value = Int(text.trimmingWhitespace()) else { throw Invalid("\"\(text)\" is not a whole number") }
        guard value >= minimum else { throw Invalid("must be at least \(minimum), not \(value)") }
        return value
    }

    static func number(_ text: String) throws(Invalid) -> Double {
        guard let value = Double(text.trimmingWhitespace()), value.isFinite else {
            throw Invalid("\"\(text)\" is not a number")
        }
        return value
    }

    static func positiveNumber(_ text: String) throws(Invalid) -> Double {
        let value = try number(text)
        guard value > 0 else { throw Invalid("must be more than 0, not \(text)") }
        return value
    }

    static func number(_ text: String, in range: ClosedRange<Double>) throws(Invalid) -> Double {
        let value = try number(text)
        guard range.contains(value) else {
            throw Invalid("must be between \(plain(range.lowerBound)) and \(plain(range.upperBound)), not \(text)")
        }
        return value
    }

    static func bool(_ text: String) throws(Invalid) -> Bool {
        switch text.trimmingWhitespace().lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw Invalid("\"\(text)\" is not true or false")
        }
    }

    static func nonEmpty(_ text: String) throws(Invalid) -> String {
        guard !text.trimmingWhitespace().isEmpty else { throw Invalid("must not be empty") }
        return text
    }

    /// A URL with one of `schemes` and a host.
    static func url(_ text: String, schemes: [String]) throws(Invalid) -> String {
        let shown = "\"\(redactingURLPassword(text))\""
        let kinds = schemes.map { "\($0)://" }.joined(separator: " or ")
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
              schemes.contains(scheme), let host = components.host, !host.isEmpty
        else { throw Invalid("\(shown) is not a \(kinds) URL") }
        return text
    }

    static func httpURL(_ text: String) throws(Invalid) -> String { try url(text, schemes: ["http", "https"]) }

    static func hostPort(_ text: String) throws(Invalid) -> String {
        guard HostPort.parse(text) != nil else {
            throw Invalid("\"\(text)\" is not HOST:PORT (e.g. 127.0.0.1:9464 or [::1]:9464)")
        }
        return text
    }

    static func logLevel(_ text: String) throws(Invalid) -> String {
        try oneOf(text, TTTConfiguration.Log.levels, what: "a log level")
    }

    static func eventType(_ text: String) throws(Invalid) -> String {
        try oneOf(text, TTTConfiguration.eventTypes, what: "an event type")
    }

    static func hateType(_ text: String) throws(Invalid) -> String {
        try oneOf(text, TTTConfiguration.hateTypes, what: "a hate type")
    }

    static func oneOf(_ text: String, _ allowed: [String], what: String) throws(Invalid) -> String {
        guard allowed.contains(text) else {
            throw Invalid("\"\(text)\" is not \(what) (\(allowed.joined(separator: ", ")))")
        }
        return text
    }

    /// ISO 639-1 (two letters), or three for languages that only have an ISO 639-3 code; or
    /// `auto`, to let the ASR detect it.
    static func language(_ text: String) throws(Invalid) -> String {
        if text == "auto" { return text }
        guard (2...3).contains(text.count), text.allSatisfy({ $0.isASCII && $0.isLowercase }) else {
            throw Invalid("\"\(text)\" is not a language code (ISO 639-1, e.g. fr, or auto)")
        }
        return text
    }

    static func group(_ text: String) throws(Invalid) -> String {
        guard !text.isEmpty, !text.contains(where: { $0.isWhitespace || $0 == ":" || $0 == "/" }) else {
            throw Invalid("\"\(text)\" is not a Unix group name")
        }
        return text
    }

    static func emailAddress(_ text: String) throws(Invalid) -> String {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty,
              !text.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" || $0 == "," })
        else { throw Invalid("\"\(text)\" is not an email address") }
        return text
    }

    /// A webhook's name is also part of a credential file name (`webhook_secret_<name>`).
    static func webhookName(_ text: String) throws(Invalid) -> String {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        else {
            throw Invalid("\"\(text)\" is not a webhook name (letters, digits, _ and -: it names the webhook_secret_<name> credential)")
        }
        return text
    }

    private static func plain(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String(value)
    }
}
