import Foundation

/// JSON-RPC 2.0 over newline-delimited JSON: the framing tttd and tttctl share.
public enum RPC {
    /// A request line longer than this is refused with `request_too_large`.
    public static let maxRequestBytes = 64 * 1024

    public static func makeEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }

    public static func makeDecoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 time: \(text)"))
            }
            return date
        }
        return decoder
    }
}

/// RFC 3339 times with milliseconds, in UTC, as every JSON output of tttd writes them.
public enum Timestamp {
    public static func format(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted))
    }

    public static func parse(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted)) {
            return date
        }
        return try? Date(text, strategy: .iso8601)
    }
}

/// A request id: JSON-RPC allows a number, a string or null.
public enum RPCID: Sendable, Hashable, Codable {
    case number(Int64)
    case string(String)
    case null

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let number = try? container.decode(Int64.self) { self = .number(number) }
        else { self = .string(try container.decode(String.self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .number(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .null: try container.encodeNil()
        }
    }
}

/// The part of a request every method shares; `params` are decoded later, by the method.
public struct RPCEnvelope: Decodable, Sendable {
    public var jsonrpc: String?
    /// Nil when the member is absent (a notification); `.null` when it is `"id": null` (a request).
    public var id: RPCID?
    public var method: String?

    enum CodingKeys: String, CodingKey { case jsonrpc, id, method }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        jsonrpc = try container.decodeIfPresent(String.self, forKey: .jsonrpc)
        method = try container.decodeIfPresent(String.self, forKey: .method)
        id = container.contains(.id) ? try container.decode(RPCID.self, forKey: .id) : nil
    }
}

public struct RPCRequest<Params: Encodable>: Encodable {
    public var jsonrpc = "2.0"
    public var id: RPCID
    public var method: String
    public var params: Params?

    public init(id: RPCID, method: String, params: Params?) {
        self.id = id
        self.method = method
        self.params = params
    }
}

/// Decodes only the `params` member of a request line.
public struct RPCParams<Params: Decodable>: Decodable {
    public var params: Params?
}

/// No parameters, or an empty object.
public struct NoParams: Codable, Sendable {
    public init() {}
}

public struct RPCSuccess<Result: Encodable>: Encodable {
    public var jsonrpc = "2.0"
    public var id: RPCID
    public var result: Result

    public init(id: RPCID, result: Result) {
        self.id = id
        self.result = result
    }
}

public struct RPCFailure: Codable, Sendable {
    public var jsonrpc = "2.0"
    public var id: RPCID
    public var error: ControlError

    public init(id: RPCID, error: ControlError) {
        self.id = id
        self.error = error
    }
}

/// What a reply line is before its result is decoded: a result or an error.
public struct RPCReplyEnvelope: Decodable {
    public var id: RPCID?
    public var error: ControlError?
    public var method: String?
}

public struct RPCResultEnvelope<Result: Decodable>: Decodable {
    public var result: Result
}

/// A server-sent notification (no id), used by `follow` to stream events.
public struct RPCNotification<Params: Codable>: Codable {
    public var jsonrpc = "2.0"
    public var method: String
    public var params: Params

    public init(method: String, params: Params) {
        self.method = method
        self.params = params
    }
}
