import Foundation

/// What the detector last learnt about an account. `unknown` is an error or a block, never "offline".
public enum CheckState: String, Sendable, Codable, CaseIterable {
    case live, offline, unknown
    /// TikTok said twice in a row that the account does not exist.
    case notFound = "not_found"
}

/// A watched TikTok account.
public struct Account: Sendable, Equatable, Codable {
    public var username: Username
    public var labels: [String]
    public var addedAt: Date
    public var addedBy: String?
    public var live: Bool
    public var lastCheckedAt: Date?
    /// Nil until the account has been checked once.
    public var checkState: CheckState?

    public init(username: Username, labels: [String], addedAt: Date, addedBy: String?, live: Bool,
                lastCheckedAt: Date?, checkState: CheckState?) {
        self.username = username
        self.labels = labels
        self.addedAt = addedAt
        self.addedBy = addedBy
        self.live = live
        self.lastCheckedAt = lastCheckedAt
        self.checkState = checkState
    }
}

/// A label attached to accounts (a region, a theme, a team). Kept short and printable.
public struct Label {
    public static let maxLength = 64

    public static func validate(_ raw: String) -> String? {
        let text = String(Substring(raw).trimmingBlanks())
        guard !text.isEmpty else { return "empty label" }
        guard text.count <= maxLength else { return "label \"\(text.prefix(20))…\" is longer than \(maxLength) characters" }
        guard !text.unicodeScalars.contains(where: { $0.properties.generalCategory == .control || $0 == "," }) else {
            return "label \"\(text)\" contains a control character or a comma"
        }
        return nil
    }
}
