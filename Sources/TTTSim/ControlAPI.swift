import Foundation
import Hummingbird

/// The `/_sim/` control API (INTERFACES.md): accounts, lives, faults, stats. Beyond INTERFACES.md:
/// `PATCH /_sim/lives/{username}` `{"paused": bool}` pauses or resumes a live (TikTok's status 3),
/// the fault kind `room_info_refused` (4003110 from room/info even to a logged-in session), and an
/// account's `restricted_code` (10011 instead of 4003110 for its room info without a session).
struct ControlAPI: Sendable {
    let simulator: Simulator

    private struct AccountBody: Decodable {
        var username: String
        var nickname: String?
        var restricted: Bool?
        /// What room info answers the restricted account without a session: 4003110 (default) or 10011.
        var restricted_code: Int?
    }

    private struct LiveBody: Decodable {
        var username: String
        var title: String?
        var audio: String?
        var loop: Bool?
    }

    private struct LiveChange: Decodable {
        var paused: Bool
    }

    func register(on router: Router<SimContext>) {
        let sim = router.group("_sim")
        sim.post("accounts") { request, _ in try await self.createAccount(request) }
        sim.get("accounts") { _, _ in self.listAccounts() }
        sim.post("lives") { request, _ in try await self.startLive(request) }
        sim.get("lives") { _, _ in self.listLives() }
        sim.delete("lives/{username}") { _, context in self.endLive(context.parameters.get("username") ?? "") }
        sim.patch("lives/{username}") { request, context in
            try await self.changeLive(context.parameters.get("username") ?? "", request)
        }
        sim.post("faults") { request, _ in try await self.addFault(request) }
        sim.get("faults") { _, _ in self.listFaults() }
        sim.delete("faults") { _, _ in
            self.simulator.faults.clear()
            return Reply.json(["cleared": true])
        }
        sim.delete("faults/{id}") { _, context in
            guard let id = context.parameters.get("id").flatMap({ Int($0) }), self.simulator.faults.remove(id: id) else {
                return Reply.error("no such fault", status: .notFound)
            }
            return Reply.json(["id": .int(Int64(id))])
        }
        sim.get("stats") { _, _ in self.stats() }
        sim.delete("stats") { _, _ in
            self.simulator.stats.reset()
            return Reply.json(["reset": true])
        }
    }

    private func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> Result<T, SimError> {
        let buffer = try await request.body.collect(upTo: 1 << 20)
        do {
            return .success(try JSONDecoder().decode(T.self, from: Data(buffer.readableBytesView)))
        } catch {
            return .failure(.invalid("invalid JSON body: \(error)"))
        }
    }

    private func createAccount(_ request: Request) async throws -> Response {
        let body: AccountBody
        switch try await decode(AccountBody.self, request) {
        case .success(let value): body = value
        case .failure(let error): return Reply.error(error.description, status: .badRequest)
        }
        guard !SimState.key(body.username).isEmpty else { return Reply.error("username is empty", status: .badRequest) }
        var code: RestrictedCode?
        if let raw = body.restricted_code {
            guard let known = RestrictedCode(rawValue: raw) else {
                let codes = RestrictedCode.allCases.map { String($0.rawValue) }.joined(separator: " or ")
                return Reply.error("restricted_code must be \(codes)", status: .badRequest)
            }
            code = known
        }
        let (account, created) = simulator.state.upsertAccount(username: body.username, nickname: body.nickname,
                                                               restricted: body.restricted, restrictedCode: code)
        return Reply.json(["username": .string(account.username)], status: created ? .created : .ok)
    }

    private func listAccounts() -> Response {
        let accounts = simulator.state.accounts().map { account -> JSONValue in
            ["username": .string(account.username), "nickname": .string(account.nickname),
             "user_id": .string(String(account.userId)), "restricted": .bool(account.restricted),
             "restricted_code": .int(Int64(account.restrictedCode.rawValue)),
             "last_room_id": account.lastRoomId.map { .string(String($0)) } ?? .null]
        }
        return Reply.json(.array(accounts))
    }

    private func startLive(_ request: Request) async throws -> Response {
        let body: LiveBody
        switch try await decode(LiveBody.self, request) {
        case .success(let value): body = value
        case .failure(let error): return Reply.error(error.description, status: .badRequest)
        }
        do {
            let live = try await simulator.startLive(username: body.username, title: body.title, audio: body.audio, loop: body.loop ?? false)
            return Reply.json(["room_id": .string(String(live.roomId)), "stream_id": .string(String(live.streamId)),
                               "username": .string(live.username)], status: .created)
        } catch let error as SimError {
            return Self.reply(error)
        } catch {
            return Reply.error("\(error)", status: .unprocessableContent)  // the audio could not be encoded
        }
    }

    private func endLive(_ username: String) -> Response {
        do {
            let live = try simulator.state.endLive(username: username)
            simulator.logger.info("live ended", metadata: ["username": "\(live.username)", "room_id": "\(live.roomId)"])
            return Reply.json(["username": .string(live.username), "room_id": .string(String(live.roomId))])
        } catch {
            return Self.reply(error)
        }
    }

    private func changeLive(_ username: String, _ request: Request) async throws -> Response {
        let change: LiveChange
        switch try await decode(LiveChange.self, request) {
        case .success(let value): change = value
        case .failure(let error): return Reply.error(error.description, status: .badRequest)
        }
        do {
            let live = try simulator.state.setPaused(username: username, change.paused)
            simulator.logger.info(change.paused ? "live paused" : "live resumed", metadata: ["username": "\(live.username)"])
            return Reply.json(["username": .string(live.username), "room_id": .string(String(live.roomId)), "paused": .bool(live.paused)])
        } catch {
            return Self.reply(error)
        }
    }

    private func listLives() -> Response {
        let lives = simulator.state.currentLives().map { live -> JSONValue in
            ["username": .string(live.username), "room_id": .string(String(live.roomId)),
             "stream_id": .string(String(live.streamId)), "title": .string(live.title),
             "started_at": .string(live.startedAt.formatted(.iso8601)),
             "audio": live.audioPath.map { .string($0) } ?? .null, "loop": .bool(live.loop),
             "stream_clients": .int(Int64(live.streamClients)), "paused": .bool(live.paused)]
        }
        return Reply.json(.array(lives))
    }

    private func addFault(_ request: Request) async throws -> Response {
        let spec: FaultSpec
        switch try await decode(FaultSpec.self, request) {
        case .success(let value): spec = value
        case .failure(let error): return Reply.error(error.description, status: .badRequest)
        }
        do {
            let id = try simulator.faults.add(spec)
            simulator.logger.info("fault added", metadata: ["id": "\(id)", "kind": "\(spec.kind.rawValue)"])
            return Reply.json(["id": .int(Int64(id))], status: .created)
        } catch {
            return Self.reply(error)
        }
    }

    private func listFaults() -> Response {
        let faults = simulator.faults.list().map { fault -> JSONValue in
            let spec = fault.spec
            var fields: [(String, JSONValue)] = [("id", .int(Int64(fault.id))), ("kind", .string(spec.kind.rawValue))]
            let numbers: [(String, Double?)] = [
                ("status", spec.status.map(Double.init)), ("ms", spec.ms.map(Double.init)), ("probability", spec.probability),
                ("duration_s", spec.duration_s), ("max", spec.max.map(Double.init)), ("window_s", spec.window_s),
                ("penalty_s", spec.penalty_s), ("retry_after", spec.retry_after.map(Double.init)),
            ]
            for case let (key, value?) in numbers {
                fields.append((key, value == value.rounded() ? .int(Int64(value)) : .double(value)))
            }
            if let paths = spec.paths { fields.append(("paths", .array(paths.map { .string($0) }))) }
            fields.append(("blocking", .bool(fault.blocking)))
            return .object(fields)
        }
        return Reply.json(.array(faults))
    }

    private func stats() -> Response {
        let snapshot = simulator.stats.snapshot()
        let requests = snapshot.requests.sorted { $0.key < $1.key }.map { ($0.key, JSONValue.int(Int64($0.value))) }
        return Reply.json([
            "requests": .object(requests),
            "max_rps": .int(Int64(snapshot.maxRPS)),
            "lives": .int(Int64(simulator.state.liveCount)),
            "stream_clients": .int(Int64(simulator.state.streamClients)),
            "blocked": .int(Int64(snapshot.blocked)),
        ])
    }

    private static func reply(_ error: SimError) -> Response {
        switch error {
        case .unknownAccount, .notLive: Reply.error(error.description, status: .notFound)
        case .alreadyLive: Reply.error(error.description, status: .conflict)
        case .invalid: Reply.error(error.description, status: .badRequest)
        }
    }
}
