import Foundation
import Logging
import NIOCore
import TTTControl
import TTTDomain
import TTTStore

/// Turns one request line into one reply line. One per connection (it holds that connection's coders).
/// Every failure becomes a JSON-RPC error with a stable code; nothing a client sends can stop the loop.
struct RequestDispatcher {
    let methods: ControlMethods
    let peer: Peer
    let logger: Logger
    private let encoder = RPC.makeEncoder()
    private let decoder = RPC.makeDecoder()

    init(methods: ControlMethods, peer: Peer, logger: Logger) {
        self.methods = methods
        self.peer = peer
        self.logger = logger
    }

    enum Outcome {
        case reply(Data)
        /// A JSON-RPC notification (no id): nothing to send.
        case silent
        /// `follow`: send the reply, then stream the subscription's events until the client leaves.
        case follow(reply: Data, subscriptionID: Int, subscription: EventFeed.Subscription)
    }

    func outcome(of frame: RequestFrame) async -> Outcome {
        if case .line(let buffer) = frame, let follow = await followRequest(buffer) { return follow }
        return (await reply(to: frame)).map(Outcome.reply) ?? .silent
    }

    /// Handles `follow` here: unlike the other methods it takes over the connection.
    private func followRequest(_ buffer: ByteBuffer) async -> Outcome? {
        let data = Data(buffer.readableBytesView)
        guard let envelope = try? decoder.decode(RPCEnvelope.self, from: data), envelope.jsonrpc == "2.0",
              envelope.method == ControlMethod.follow.rawValue, peer.role != nil, let id = envelope.id else { return nil }
        do {
            guard let params = try decoder.decode(RPCParams<FollowParams>.self, from: data).params else {
                return .reply(failure(id, ControlError(.invalidParams, "missing \"params\"")))
            }
            var names = [String]()
            for raw in params.usernames {
                do { names.append(try Username(validating: raw).value) } catch {
                    return .reply(failure(id, ControlError(.invalidUsername, error.description)))
                }
            }
            guard params.all || !names.isEmpty else {
                return .reply(failure(id, ControlError(.invalidParams, "name an account or follow all")))
            }
            let (subscriptionID, subscription) = try await methods.feed.subscribe(usernames: params.all ? nil : Set(names))
            var reply = try encoder.encode(RPCSuccess(id: id, result: FollowResult(following: names.sorted(), all: params.all)))
            reply.append(UInt8(ascii: "\n"))
            return .follow(reply: reply, subscriptionID: subscriptionID, subscription: subscription)
        } catch let error as StoreError {
            return .reply(failure(id, ControlError(.databaseUnavailable, "the database is unavailable (\(error)); try again when it is back")))
        } catch {
            return .reply(failure(id, ControlError(.invalidParams, "invalid params: \(error)")))
        }
    }

    /// The reply to send, or nil for a JSON-RPC notification (a request without an id).
    func reply(to frame: RequestFrame) async -> Data? {
        guard case .line(let buffer) = frame else {
            return failure(.null, ControlError(.requestTooLarge, "request larger than \(RPC.maxRequestBytes / 1024) KiB"))
        }
        let data = Data(buffer.readableBytesView)
        if data.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\t") }) { return nil }
        // JSON is UTF-8; Foundation's decoder would let some invalid bytes through inside strings.
        guard String(validating: data, as: UTF8.self) != nil else {
            return failure(.null, ControlError(.parseError, "not a JSON-RPC request: invalid UTF-8"))
        }
        let envelope: RPCEnvelope
        do { envelope = try decoder.decode(RPCEnvelope.self, from: data) } catch {
            // Valid JSON that is not a request object is an invalid request, not a parse error.
            if (try? decoder.decode(JSONValue.self, from: data)) != nil {
                return failure(.null, ControlError(.invalidRequest, "a request is a JSON object with \"jsonrpc\": \"2.0\" and a \"method\""))
            }
            return failure(.null, ControlError(.parseError, "not a JSON-RPC request: \(Self.reason(error))"))
        }
        let id = envelope.id ?? .null
        guard envelope.jsonrpc == "2.0", let name = envelope.method else {
            return failure(id, ControlError(.invalidRequest, "a request needs \"jsonrpc\": \"2.0\" and a \"method\""))
        }
        // A notification (no id) is never answered, not even with an error (JSON-RPC 2.0 §4.1).
        let isNotification = envelope.id == nil
        guard let method = ControlMethod(rawValue: name) else {
            return isNotification ? nil : failure(id, ControlError(.methodNotFound, "unknown method \"\(name.prefix(64))\""))
        }
        guard let role = peer.role else {
            let groups = methods.roles.current
            return isNotification ? nil : failure(id, ControlError(.forbidden,
                "\(peer.name) is not allowed to use tttd: join group \(groups.viewerName) (read) or \(groups.adminName) (change)"))
        }
        guard role >= method.requiredRole else {
            return isNotification ? nil : failure(id, ControlError(.forbidden,
                "\(method.rawValue) needs the admin role: \(peer.name) is a viewer (admins are in group \(methods.roles.current.adminName))"))
        }
        do {
            let result = try await methods.call(method, params: data, decoder: decoder, peer: peer, role: role, encoder: encoder, id: id)
            return isNotification ? nil : result
        } catch let error as ControlError {
            return isNotification ? nil : failure(id, error)
        } catch {
            logger.error("control request failed", metadata: ["method": "\(name)", "error": "\(error)"])
            return isNotification ? nil : failure(id, ControlError(.internalError, "internal error: \(error)"))
        }
    }

    private func failure(_ id: RPCID, _ error: ControlError) -> Data {
        // Encoding an error of plain strings cannot fail.
        var data = (try? encoder.encode(RPCFailure(id: id, error: error))) ?? Data()
        data.append(UInt8(ascii: "\n"))
        return data
    }

    private static func reason(_ error: any Error) -> String {
        if let decoding = error as? DecodingError {
            switch decoding {
            case .dataCorrupted(let context): return context.underlyingError.map { "\($0)" } ?? context.debugDescription
            case .keyNotFound(let key, _): return "missing \"\(key.stringValue)\""
            case .typeMismatch(_, let context), .valueNotFound(_, let context): return context.debugDescription
            @unknown default: return "\(decoding)"
            }
        }
        return "\(error)"
    }
}
