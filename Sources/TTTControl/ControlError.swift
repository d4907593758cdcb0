/// The stable error codes of the control protocol (`error.data.code`). Scripts match on these.
public enum ControlErrorCode: String, Sendable, Codable, CaseIterable {
    case parseError = "parse_error"
    case invalidRequest = "invalid_request"
    case methodNotFound = "method_not_found"
    case invalidParams = "invalid_params"
    case requestTooLarge = "request_too_large"
    case invalidUsername = "invalid_username"
    case invalidLabel = "invalid_label"
    case notFound = "not_found"
    case forbidden = "forbidden"
    case databaseUnavailable = "database_unavailable"
    case internalError = "internal_error"

    /// The numeric JSON-RPC code: the reserved ones where JSON-RPC defines the case.
    public var rpcCode: Int {
        switch self {
        case .parseError: return -32700
        case .invalidRequest, .requestTooLarge: return -32600
        case .methodNotFound: return -32601
        case .invalidParams, .invalidUsername, .invalidLabel: return -32602
        case .internalError: return -32603
        case .notFound: return -32001
        case .forbidden: return -32003
        case .databaseUnavailable: return -32010
        }
    }
}

/// A JSON-RPC error object: `{"code": -32602, "message": "…", "data": {"code": "invalid_username", …}}`.
public struct ControlError: Error, Codable, Sendable, Equatable, CustomStringConvertible {
    public struct Details: Codable, Sendable, Equatable {
        public var code: String
        /// Per-item problems, e.g. each bad username of a batch.
        public var problems: [String]?
    }

    public var code: Int
    public var message: String
    public var data: Details?

    public init(_ kind: ControlErrorCode, _ message: String, problems: [String]? = nil) {
        self.code = kind.rpcCode
        self.message = message
        self.data = Details(code: kind.rpcCode == 0 ? "" : kind.rawValue, problems: problems)
    }

    /// The stable string code, or nil when a peer sent none.
    public var kind: ControlErrorCode? { data.flatMap { ControlErrorCode(rawValue: $0.code) } }

    public var description: String { message }
}
