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
        guard case .line(let buffer) = frame else {
            return .reply(failure(.null, ControlError(.requestTooLarge, "request larger than \(RPC.maxRequestBytes / 1024) KiB")))
        }
        let data = Data(buffer.readableBytesView)
        switch RPC.decodeRequest(data, decoder: decoder) {
        case .blank:
            return .silent
        case .failed(let id, let error):
            return id.map { .reply(failure($0, error)) } ?? .silent
        case .request(let id?, .follow) where peer.role != nil:
            return await follow(data, id: id)
        case .request(let id, let method):
            return (await reply(data, id: id, method: method)).map(Outcome.reply) ?? .silent
        }
    }

    /// Handles `follow` here: unlike the other methods it takes over the connection.
    private func follow(_ data: Data, id: RPCID) async -> Outcome {
        do {
            guard let params = try RPC.params(FollowParams.self, from: data, decoder: decoder) else {
                return .reply(failure(id, ControlError(.invalidParams, "missing \"params\"")))
            }
            var usernames = [Username]()
            for raw in params.usernames {
                do { usernames.append(try Username(validating: raw)) } catch {
                    return .reply(failure(id, ControlError(.invalidUsername, error.description)))
                }
            }
            let names = usernames.map(\.value)
            guard params.all || !names.isEmpty else {
                return .reply(failure(id, ControlError(.invalidParams, "name an account or follow all")))
            }
            // An account nobody watches has no events to wait for: say so rather than wait for ever.
            if !params.all {
                let missing = try await methods.store.unwatched(usernames).map(\.value)
                if !missing.isEmpty {
                    return .reply(failure(id, ControlError(.notFound, missing.count == 1
                        ? "@\(missing[0]) is not watched; add it with: tttctl accounts add @\(missing[0])"
                        : "not watched: \(missing.map { "@" + $0 }.joined(separator: ", "))", problems: missing)))
                }
            }
            let (subscriptionID, subscription) = try await methods.feed.subscribe(usernames: params.all ? nil : Set(names))
            logger.debug("follower subscribed", metadata: ["accounts": "\(params.all ? "all" : names.sorted().joined(separator: ","))"])
            var reply = try encoder.encode(RPCSuccess(id: id, result: FollowResult(following: names.sorted(), all: params.all)))
            reply.append(UInt8(ascii: "\n"))
            return .follow(reply: reply, subscriptionID: subscriptionID, subscription: subscription)
        } catch let error as ControlError {
            return .reply(failure(id, error))
        } catch let error as StoreError {
            return .reply(failure(id, ControlError(.databaseUnavailable, "the database is unavailable (\(error)); try again when it is back")))
        } catch {
            return .reply(failure(id, ControlError(.internalError, "internal error: \(error)")))
        }
    }

    /// The reply to a request for `method`, or nil for a JSON-RPC notification (no id).
    private func reply(_ data: Data, id requestID: RPCID?, method: ControlMethod) async -> Data? {
        let isNotification = requestID == nil
        let id = requestID ?? .null
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
            logger.error("control request failed", metadata: ["method": "\(method.rawValue)", "error": "\(error)"])
            return isNotification ? nil : failure(id, ControlError(.internalError, "internal error: \(error)"))
        }
    }

    private func failure(_ id: RPCID, _ error: ControlError) -> Data {
        // Encoding an error of plain strings cannot fail.
        var data = (try? encoder.encode(RPCFailure(id: id, error: error))) ?? Data()
        data.append(UInt8(ascii: "\n"))
        return data
    }
}
