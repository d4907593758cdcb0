import Foundation
import TTTDomain

/// Method names of the control protocol (INTERFACES.md), and the role each needs.
public enum ControlMethod: String, Sendable, CaseIterable {
    case status
    case accountsAdd = "accounts.add"
    case accountsRemove = "accounts.remove"
    case accountsList = "accounts.list"
    case accountsImport = "accounts.import"
    case livesList = "lives.list"
    case livesShow = "lives.show"
    case follow
    case pipelinesList = "pipelines.list"
    case pipelinesStop = "pipelines.stop"
    case alertsList = "alerts.list"
    case alertsAck = "alerts.ack"
    case evidenceExport = "evidence.export"

    public var requiredRole: Role {
        switch self {
        case .status, .accountsList, .livesList, .livesShow, .follow, .pipelinesList, .alertsList: return .viewer
        case .accountsAdd, .accountsRemove, .accountsImport, .pipelinesStop, .alertsAck, .evidenceExport: return .admin
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
    public var detection: DetectionStatus?
    /// `ok`, `waiting: <reason>` (the model is unreachable; windows wait), or `off: <reason>`.
    public var analysis: String?
    /// Windows waiting for the analyzer (all nodes).
    public var analysisBacklog: Int?

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

/// How detection keeps up: the time between two checks of an account, against the target.
public struct DetectionStatus: Codable, Sendable, Equatable {
    public var node: String
    public var intervalS: Double
    /// Between two checks of an account of average weight; above `interval_s` when the budget cannot keep it.
    public var roundS: Double
    public var stretched: Bool
    public var budgetRps: Double
    public var egresses: [EgressStatus]

    public init(node: String, intervalS: Double, roundS: Double, stretched: Bool, budgetRps: Double, egresses: [EgressStatus]) {
        self.node = node
        self.intervalS = intervalS
        self.roundS = roundS
        self.stretched = stretched
        self.budgetRps = budgetRps
        self.egresses = egresses
    }
}

public struct EgressStatus: Codable, Sendable, Equatable {
    public var name: String
    public var rateRps: Double
    public var slowdown: Double
    public var pausedForS: Double
    public var lastBlock: String?
    public var requests: Int
    public var blocks: Int

    public init(name: String, rateRps: Double, slowdown: Double, pausedForS: Double, lastBlock: String?, requests: Int, blocks: Int) {
        self.name = name
        self.rateRps = rateRps
        self.slowdown = slowdown
        self.pausedForS = pausedForS
        self.lastBlock = lastBlock
        self.requests = requests
        self.blocks = blocks
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

public struct LivesListParams: Codable, Sendable {
    public var active: Bool
    public var username: String?
    public var limit: Int?

    public init(active: Bool = false, username: String? = nil, limit: Int? = nil) {
        self.active = active
        self.username = username
        self.limit = limit
    }
}

/// One row of `lives --json`; `live show` adds the live's transcripts and analyses.
public struct LiveInfo: Codable, Sendable, Equatable {
    public var id: Int64
    public var username: String
    public var roomId: String
    public var title: String?
    public var startedAt: Date
    public var endedAt: Date?
    /// `live` or `ended`.
    public var status: String
    public var peakViewers: Int?
    public var endReason: String?
    public var restricted: Bool
    public var transcripts: [JSONValue]?
    public var analyses: [JSONValue]?

    public init(id: Int64, username: String, roomId: String, title: String?, startedAt: Date, endedAt: Date?,
                status: String, peakViewers: Int?, endReason: String?, restricted: Bool) {
        self.id = id
        self.username = username
        self.roomId = roomId
        self.title = title
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.status = status
        self.peakViewers = peakViewers
        self.endReason = endReason
        self.restricted = restricted
    }

    // Explicit so that absent values are written as null, as scripts expect every key.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(username, forKey: .username)
        try container.encode(roomId, forKey: .roomId)
        try container.encode(title, forKey: .title)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(endedAt, forKey: .endedAt)
        try container.encode(status, forKey: .status)
        try container.encode(peakViewers, forKey: .peakViewers)
        try container.encode(endReason, forKey: .endReason)
        try container.encode(restricted, forKey: .restricted)
        try container.encodeIfPresent(transcripts, forKey: .transcripts)
        try container.encodeIfPresent(analyses, forKey: .analyses)
    }
}

public struct LivesShowParams: Codable, Sendable {
    public var id: Int64

    public init(id: Int64) { self.id = id }
}

public struct FollowParams: Codable, Sendable {
    /// Empty with `all`: every account.
    public var usernames: [String]
    public var all: Bool

    public init(usernames: [String], all: Bool) {
        self.usernames = usernames
        self.all = all
    }
}

public struct FollowResult: Codable, Sendable, Equatable {
    /// The accounts followed, or empty when following all.
    public var following: [String]
    public var all: Bool

    public init(following: [String], all: Bool) {
        self.following = following
        self.all = all
    }
}

/// One row of `pipelines --json` (INTERFACES.md). `backlog` and `asr_p50_ms` are known for the
/// pipelines of the node answering; a pipeline run by another node has them null.
public struct PipelineInfo: Codable, Sendable, Equatable {
    public var id: Int64
    public var liveId: Int64
    public var username: String
    public var state: String
    public var reason: String?
    public var node: String
    public var startedAt: Date
    public var audioS: Double
    public var windows: Int
    public var backlog: Int?
    public var gapsS: Double
    public var asrP50Ms: Int?

    public init(id: Int64, liveId: Int64, username: String, state: String, reason: String?, node: String, startedAt: Date,
                audioS: Double, windows: Int, backlog: Int?, gapsS: Double, asrP50Ms: Int?) {
        self.id = id
        self.liveId = liveId
        self.username = username
        self.state = state
        self.reason = reason
        self.node = node
        self.startedAt = startedAt
        self.audioS = audioS
        self.windows = windows
        self.backlog = backlog
        self.gapsS = gapsS
        self.asrP50Ms = asrP50Ms
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(liveId, forKey: .liveId)
        try container.encode(username, forKey: .username)
        try container.encode(state, forKey: .state)
        try container.encode(reason, forKey: .reason)
        try container.encode(node, forKey: .node)
        try container.encode(startedAt, forKey: .startedAt)
        try container.encode(audioS, forKey: .audioS)
        try container.encode(windows, forKey: .windows)
        try container.encode(backlog, forKey: .backlog)
        try container.encode(gapsS, forKey: .gapsS)
        try container.encode(asrP50Ms, forKey: .asrP50Ms)
    }
}

public struct PipelinesStopParams: Codable, Sendable {
    public var id: Int64

    public init(id: Int64) { self.id = id }
}

public struct PipelinesStopResult: Codable, Sendable, Equatable {
    public var id: Int64
    public var stopping: Bool

    public init(id: Int64, stopping: Bool) {
        self.id = id
        self.stopping = stopping
    }
}

public struct AlertsListParams: Codable, Sendable {
    public var unacked: Bool
    public var limit: Int?

    public init(unacked: Bool = false, limit: Int? = nil) {
        self.unacked = unacked
        self.limit = limit
    }
}

public struct AlertsAckParams: Codable, Sendable {
    public var id: Int64

    public init(id: Int64) { self.id = id }
}

public struct AlertsAckResult: Codable, Sendable, Equatable {
    public var id: Int64
    public var ackedBy: String
    /// Someone had acked it already (`acked_by` says who).
    public var already: Bool

    public init(id: Int64, ackedBy: String, already: Bool) {
        self.id = id
        self.ackedBy = ackedBy
        self.already = already
    }
}

public struct EvidenceExportParams: Codable, Sendable {
    public var id: Int64

    public init(id: Int64) { self.id = id }
}

/// What `tttctl evidence export` writes: the manifest, and the clip (base64) when there is one.
/// tttctl writes the files itself, as the user who asked, where that user may write.
public struct EvidenceExportResult: Codable, Sendable, Equatable {
    public var manifest: JSONValue
    public var clipName: String?
    public var clipBase64: String?

    public init(manifest: JSONValue, clipName: String?, clipBase64: String?) {
        self.manifest = manifest
        self.clipName = clipName
        self.clipBase64 = clipBase64
    }
}
