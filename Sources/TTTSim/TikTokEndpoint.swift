/// The TikTok endpoints tttsim serves, recognised from a request path. Everything else (the
/// control API, unknown paths) is not counted in stats and never faulted.
public enum TikTokEndpoint: String, Sendable, CaseIterable {
    case userRoom, checkAlive, roomInfo, livePage, stream

    public init?(path: String) {
        let trimmed = path.hasSuffix("/") ? String(path.dropLast()) : path
        switch trimmed {
        case "/api-live/user/room": self = .userRoom
        case "/webcast/room/check_alive": self = .checkAlive
        case "/webcast/room/info": self = .roomInfo
        default:
            if trimmed.hasPrefix("/@"), trimmed.hasSuffix("/live"), trimmed.count > "/@/live".count {
                self = .livePage
            } else if trimmed.hasPrefix("/game/stream-"), trimmed.hasSuffix(".flv") {
                self = .stream
            } else {
                return nil
            }
        }
    }

    /// What TikTok's WAF counts and blocks: the api-live lookups and the HTML pages (check_alive
    /// and room info go to webcast hosts that the reports do not show blocked).
    var countedByWAF: Bool { self == .userRoom || self == .livePage }
}
