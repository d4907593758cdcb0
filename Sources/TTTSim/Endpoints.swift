import Foundation
import Hummingbird
import Synchronization

/// The TikTok routes (TIKTOK.md): web (`/api-live/user/room/`, `/@user/live`), webcast
/// (`/webcast/room/check_alive/`, `/webcast/room/info/`) and the CDN's `/game/stream-….flv`.
struct TikTokEndpoints: Sendable {
    let state: SimState
    let urls: StreamURLs
    let streamer: LiveStreamer
    /// The port actually bound, for stream URLs when the Host header carries none.
    let boundPort: @Sendable () -> Int

    func register(on router: Router<SimContext>) {
        router.get("api-live/user/room") { request, _ in self.userRoom(request) }
        router.get("webcast/room/check_alive") { request, _ in self.checkAlive(request) }
        router.get("webcast/room/info") { request, _ in self.roomInfo(request) }
        router.get("{handle}/live") { request, context in
            self.livePage(request, handle: context.parameters.get("handle") ?? "")
        }
        router.get("game/{file}") { request, context in
            self.stream(request, file: context.parameters.get("file") ?? "")
        }
    }

    private func answers(_ request: Request) -> TikTokAnswers {
        let authority = request.head.authority ?? "127.0.0.1"
        let base = authority.contains(":") ? "http://\(authority)" : "http://\(authority):\(boundPort())"
        return TikTokAnswers(base: base, urls: urls, now: Date())
    }

    private static func query(_ request: Request, _ name: String) -> String? {
        guard let value = request.uri.queryParameters[name[...]], !value.isEmpty else { return nil }
        return String(value)
    }

    func userRoom(_ request: Request) -> Response {
        guard Self.query(request, "aid") != nil, let uniqueId = Self.query(request, "uniqueId") else {
            return Reply.json(TikTokAnswers.paramsError)
        }
        guard let (account, live) = state.accountAndLive(uniqueId) else {
            return Reply.json(TikTokAnswers.userNotFound)
        }
        return Reply.json(answers(request).userRoom(account, live, withSession: Self.hasSession(request)))
    }

    func checkAlive(_ request: Request) -> Response {
        let answers = answers(request)
        guard Self.query(request, "aid") != nil, let list = Self.query(request, "room_ids") else {
            return Reply.json(TikTokAnswers.paramsError10011(nowMs: answers.nowMs))
        }
        var seen = Set<Int64>()
        let rooms = list.split(separator: ",")
            .compactMap { Int64($0.trimmingCharacters(in: .whitespaces)) }
            .filter { seen.insert($0).inserted }
            .compactMap { state.room($0) }
        return Reply.json(answers.checkAlive(rooms))
    }

    func roomInfo(_ request: Request) -> Response {
        let answers = answers(request)
        guard Self.query(request, "aid") != nil, let roomId = Self.query(request, "room_id").flatMap({ Int64($0) }) else {
            return Reply.json(TikTokAnswers.paramsError10011(nowMs: answers.nowMs))
        }
        guard let (account, live) = state.account(ofRoom: roomId) else {
            return Reply.json(answers.roomNotFound())
        }
        if account.restricted, !Self.hasSession(request) {
            switch account.restrictedCode {
            case .ageRestricted: return Reply.json(answers.ageRestricted())
            case .paramsError: return Reply.json(TikTokAnswers.paramsError10011(nowMs: answers.nowMs))
            }
        }
        return Reply.json(answers.roomInfo(account, live))
    }

    /// A logged-in session: a `sessionid` cookie with a value, and the data centre's
    /// `tt-target-idc` beside it (TIKTOK.md: the session alone is not enough).
    static func hasSession(_ request: Request) -> Bool {
        hasCookie("sessionid", in: request) && hasCookie("tt-target-idc", in: request)
    }

    /// A cookie `name` with a non-empty value, in any Cookie header.
    private static func hasCookie(_ name: String, in request: Request) -> Bool {
        request.headers[values: .cookie].contains { header in
            header.split(separator: ";").contains { pair in
                let parts = pair.split(separator: "=", maxSplits: 1)
                return parts.count == 2 && parts[0].trimmingCharacters(in: .whitespaces) == name
                    && !parts[1].trimmingCharacters(in: .whitespaces).isEmpty
            }
        }
    }

    func livePage(_ request: Request, handle: String) -> Response {
        guard handle.hasPrefix("@"), handle.count > 1 else { return Reply.text("Not Found", status: .notFound) }
        let entry = state.accountAndLive(String(handle.dropFirst()))
        return Reply.html(answers(request).livePage(handle: handle, entry))
    }

    /// 403 for a bad or expired sign (checked first, like a CDN), 404 when not live.
    func stream(_ request: Request, file: String) -> Response {
        guard let streamId = StreamURLs.streamId(fileName: file[...]) else { return Reply.text("Not Found", status: .notFound) }
        guard let expire = Self.query(request, "expire").flatMap({ Int64($0) }),
              let sign = Self.query(request, "sign"),
              urls.signer.isValid(streamId: streamId, expire: expire, sign: sign, now: Date())
        else { return Reply.text("Forbidden", status: .forbidden) }
        guard let live = state.live(streamId: streamId), live.isLive else {
            return Reply.text("Not Found", status: .notFound)
        }
        return streamer.response(for: live, path: request.uri.path)
    }
}
