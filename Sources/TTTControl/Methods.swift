import Foundation
import TTTDomain

/// Method names of the control protocol (INTERFACES.md), and the role each needs.
public enum ControlMethod: String, Sendable, CaseIterable {
    case status
    case accountsAdd = "accounts.add"
    case accountsRemove = "accounts.remove"
    case accountsList = "accounts.list"
    case accountsImport = "accounts.import"

    public var requiredRole: Role {
        switch self {
        case .status, .accountsList: return .viewer
        case .accountsAdd, .accountsRemove, .accountsImport: return .admin
        }
    }
}

public struct StatusResult: Codable, Sendable, Equatable {
    public var version: String
    public var uptimeS: Double
    public var accounts: Int
    public var livesActive: Int
    public var pipelinesActive: Int
    /// `ok`, or `unavailable: <reason>`.
    public var database: String
    /// The caller's role, so `tttctl status` can tell a viewer what they may do.
    public var role: Role

    public init(version: String, uptimeS: Double, accounts: Int, livesActive: Int, pipelinesActive: Int,
                database: String, role: Role) {
        self.version = version
        self.uptimeS = uptimeS
        self.accounts = accounts
        self.livesActive = livesActive
        self.pipelinesActive = pipelinesActive
        self.database = database
        self.role = role
    }
}

public struct AccountsAddParams: Codable, Sendable {
    public var usernames: [String]
    public var labels: [String]

    public init(usernames: [String], labels: [String] = []) {
        self.usernames = usernames
        self.labels = labels
    }
}

public struct AccountsAddResult: Codable, Sendable, Equatable {
    public var added: [String]
    /// Already watched: left as they were (their labels gain the new ones).
    public var existing: [String]

    public init(added: [String], existing: [String]) {
        self.added = added
        self.existing = existing
    }
}

public struct AccountsRemoveParams: Codable, Sendable {
    public var usernames: [String]

    public init(usernames: [String]) { self.usernames = usernames }
}

public struct AccountsRemoveResult: Codable, Sendable, Equatable {
    public var removed: [String]

    public init(removed: [String]) { self.removed = removed }
}

public struct AccountsListParams: Codable, Sendable {
    public var label: String?

    public init(label: String? = nil) { self.label = label }
}

/// One row of `accounts list --json`.
public struct AccountInfo: Codable, Sendable, Equatable {
    public var username: String
    public var labels: [String]
    public var addedAt: Date
    public var live: Bool
    public var lastCheckedAt: Date?
    public var checkState: CheckState

    public init(_ account: Account) {
        username = account.username.value
        labels = account.labels
        addedAt = account.addedAt
        live = account.live
        lastCheckedAt = account.lastCheckedAt
        checkState = account.checkState ?? .unknown
    }

    // Explicit so that `last_checked_at: null` is written rather than left out.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(username, forKey: .username)
        try container.encode(labels, forKey: .labels)
        try container.encode(addedAt, forKey: .addedAt)
        try container.encode(live, forKey: .live)
        try container.encode(lastCheckedAt, forKey: .lastCheckedAt)
        try container.encode(checkState, forKey: .checkState)
    }
}

/// A slice of an import file: tttctl sends big files in batches that fit in one request.
public struct AccountsImportParams: Codable, Sendable {
    public var lines: [String]
    /// The file line number of `lines[0]`, so problems name the right line.
    public var firstLine: Int
    public var labels: [String]

    public init(lines: [String], firstLine: Int, labels: [String] = []) {
        self.lines = lines
        self.firstLine = firstLine
        self.labels = labels
    }
}

public struct ImportProblem: Codable, Sendable, Equatable {
    public var line: Int
    public var text: String
    public var message: String

    public init(line: Int, text: String, message: String) {
        self.line = line
        self.text = text
        self.message = message
    }
}

public struct AccountsImportResult: Codable, Sendable, Equatable {
    public var added: [String]
    public var existing: [String]
    public var rejected: [ImportProblem]

    public init(added: [String], existing: [String], rejected: [ImportProblem]) {
        self.added = added
        self.existing = existing
        self.rejected = rejected
    }
}

extension AccountsImportParams {
    /// Reads an import file's lines: one username per line; blank lines and `#` comments are skipped.
    public static func meaningful(_ line: Substring) -> Bool {
        let text = line.trimmingCharacters(in: .whitespaces)
        return !text.isEmpty && !text.hasPrefix("#")
    }
}
