import Foundation

/// What tttd makes of one request line before it looks at who sent it.
public enum RequestLine: Sendable, Equatable {
    /// Only blanks: skipped, not answered.
    case blank
    /// Not a request it can run: answered with `error`, unless `id` is nil (a notification, never
    /// answered, JSON-RPC 2.0 §4.1). An id that could not be read is `.null`.
    case failed(id: RPCID?, error: ControlError)
    /// A method to run; `id` nil for a notification.
    case request(id: RPCID?, method: ControlMethod)
}

extension RPC {
    /// Reads the envelope of a request line (no `\n`). Every failure becomes an error with a
    /// stable code; `params` are read by the method, with `params(_:from:decoder:)`.
    public static func decodeRequest(_ line: Data, decoder: JSONDecoder) -> RequestLine {
        if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { return .blank }
        // JSON is UTF-8; Foundation's decoder would let some invalid bytes through inside strings.
        guard String(validating: line, as: UTF8.self) != nil else {
            return .failed(id: .null, error: ControlError(.parseError, "not a JSON-RPC request: invalid UTF-8"))
        }
        let envelope: RPCEnvelope
        do { envelope = try decoder.decode(RPCEnvelope.self, from: line) } catch {
            // Valid JSON that is not a request object is an invalid request, not a parse error.
            if (try? decoder.decode(JSONValue.self, from: line)) != nil {
                return .failed(id: .null, error: ControlError(.invalidRequest, "a request is a JSON object with \"jsonrpc\": \"2.0\" and a \"method\""))
            }
            return .failed(id: .null, error: ControlError(.parseError, "not a JSON-RPC request: \(envelopeReason(error))"))
        }
        guard envelope.jsonrpc == "2.0", let name = envelope.method else {
            return .failed(id: envelope.id ?? .null,
                           error: ControlError(.invalidRequest, "a request needs \"jsonrpc\": \"2.0\" and a \"method\""))
        }
        guard let method = ControlMethod(rawValue: name) else {
            return .failed(id: envelope.id, error: ControlError(.methodNotFound, "unknown method \"\(name.prefix(64))\""))
        }
        return .request(id: envelope.id, method: method)
    }

    /// The request's `params` as `type`, nil when absent; `invalid_params` when they do not fit.
    public static func params<P: Decodable>(_ type: P.Type, from line: Data, decoder: JSONDecoder) throws(ControlError) -> P? {
        do { return try decoder.decode(RPCParams<P>.self, from: line).params } catch {
            throw ControlError(.invalidParams, "invalid params: \(paramsReason(error))")
        }
    }

    private static func envelopeReason(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "\(error)" }
        switch decoding {
        case .dataCorrupted(let context): return context.underlyingError.map { "\($0)" } ?? context.debugDescription
        case .keyNotFound(let key, _): return "missing \"\(key.stringValue)\""
        case .typeMismatch(_, let context), .valueNotFound(_, let context): return context.debugDescription
        @unknown default: return "\(decoding)"
        }
    }

    private static func paramsReason(_ error: any Error) -> String {
        guard let decoding = error as? DecodingError else { return "\(error)" }
        switch decoding {
        case .keyNotFound(let key, _): return "missing \"\(key.stringValue)\""
        case .typeMismatch(let type, let context):
            return "\(context.codingPath.map(\.stringValue).joined(separator: ".")) should be \(type)"
        case .valueNotFound(_, let context), .dataCorrupted(let context):
            return "\(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)"
        @unknown default: return "\(decoding)"
        }
    }
}
