/// A TikTok account name (`unique_id`), as TikTok allows it: 2–24 characters of letters, digits,
/// `_` and `.`, not ending in `.`. Stored lower-cased and without the `@` people type in front.
public struct Username: Sendable, Hashable, Comparable, Codable, CustomStringConvertible {
    public let value: String

    public static let minLength = 2
    public static let maxLength = 24

    /// Accepts `alice`, `@Alice`, ` @alice ` (surrounding blanks are ignored).
    public init(validating raw: String) throws(UsernameError) {
        var text = Substring(raw).trimmingBlanks()
        if text.first == "@" { text = text.dropFirst() }
        guard !text.isEmpty else { throw .empty }
        let lowered = text.lowercased()
        if let bad = lowered.unicodeScalars.first(where: { !Self.isAllowed($0) }) {
            throw .invalidCharacter(raw: String(text), character: String(bad))
        }
        let count = lowered.unicodeScalars.count
        guard count >= Self.minLength else { throw .tooShort(raw: String(text)) }
        guard count <= Self.maxLength else { throw .tooLong(raw: String(text), length: count) }
        guard lowered.last != "." else { throw .endsWithDot(raw: String(text)) }
        value = lowered
    }

    /// For values read back from the store, which only holds validated names.
    public init(trusted value: String) { self.value = value }

    public var description: String { value }
    public var handle: String { "@" + value }

    public static func < (lhs: Username, rhs: Username) -> Bool { lhs.value < rhs.value }

    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        do { try self.init(validating: raw) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(value)
    }

    private static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "a"..."z", "0"..."9", "_", ".": return true
        default: return false
        }
    }
}

public enum UsernameError: Error, Sendable, Equatable, CustomStringConvertible {
    case empty
    case invalidCharacter(raw: String, character: String)
    case tooShort(raw: String)
    case tooLong(raw: String, length: Int)
    case endsWithDot(raw: String)

    public var description: String {
        switch self {
        case .empty:
            return "empty username"
        case let .invalidCharacter(raw, character):
            let shown = character == " " ? "a space" : "\"\(character)\""
            return "\"\(raw)\" is not a TikTok username: \(shown) is not allowed (letters, digits, _ and . only)"
        case let .tooShort(raw):
            return "\"\(raw)\" is not a TikTok username: at least \(Username.minLength) characters"
        case let .tooLong(raw, length):
            return "\"\(raw)\" is not a TikTok username: \(length) characters, at most \(Username.maxLength)"
        case let .endsWithDot(raw):
            return "\"\(raw)\" is not a TikTok username: it cannot end with \".\""
        }
    }
}

extension Substring {
    func trimmingBlanks() -> Substring {
        var text = self
        while let first = text.first, first.isWhitespace { text = text.dropFirst() }
        while let last = text.last, last.isWhitespace { text = text.dropLast() }
        return text
    }
}
