import Foundation
import Hummingbird
import NIOCore
import NIOPosix

/// In front of every route: counts TikTok-endpoint requests for `/_sim/stats` and applies the
/// active faults to them. The control API passes through untouched.
struct FaultMiddleware: RouterMiddleware {
    typealias Context = SimContext

    let faults: FaultBoard
    let stats: RequestStats

    func handle(_ request: Request, context: SimContext, next: (Request, SimContext) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard let endpoint = TikTokEndpoint(path: path) else { return try await next(request, context) }
        stats.record(path: path)
        let decision = faults.decide(endpoint: endpoint, path: path)
        if decision.delayMs > 0 {
            try await Task.sleep(for: .milliseconds(decision.delayMs))
        }
        if decision.action != .none { stats.recordBlocked() }
        switch decision.action {
        case .none:
            return try await next(request, context)
        case .status(let status, let retryAfter):
            let reason = HTTPResponse.Status(code: status).reasonPhrase
            var response = Reply.json(["data": nil, "extra": [:], "message": .string(reason.isEmpty ? "error" : reason),
                                       "statusCode": .int(Int64(status))],
                                      status: .init(code: status))
            if let retryAfter { response.headers[Reply.retryAfter] = String(retryAfter) }
            // A redirect back to the same URL: a WAF's bounce, which a client following it would
            // send again and again.
            if (300..<400).contains(status) { response.headers[.location] = "\(request.uri)" }
            return response
        case .challenge:
            return Reply.html(TikTokAnswers.challengePage(id: String(Reply.newLogId().suffix(16))))
        case .empty:
            return Reply.bytes([], type: Reply.jsonType)
        case .userNotFound:
            return Reply.json(TikTokAnswers.userNotFound)
        case .roomInfoRefused:
            return Reply.json(TikTokAnswers.refused(nowMs: Int64(Date().timeIntervalSince1970 * 1000)))
        case .reset:
            await Self.reset(context.channel)
            // Never delivered: the connection is gone, Hummingbird's write fails quietly.
            return Response(status: .ok)
        }
    }

    /// Closes the connection with a TCP RST (SO_LINGER 0), as a middlebox dropping it would:
    /// the client sees "connection reset by peer" and no response at all.
    private static func reset(_ channel: any Channel) async {
        if let socket = channel as? any SocketOptionProvider {
            try? await socket.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
        }
        try? await channel.close()
    }
}
