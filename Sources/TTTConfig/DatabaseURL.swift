import Foundation

/// Where the PostgreSQL server is, parsed once so that nothing else in the daemon has to parse URLs.
///
/// Accepted forms (libpq's, restricted to what the store uses):
/// - `postgresql://user[:password]@host[:port]/db` — TCP;
/// - `postgresql://user@/db?host=/socket/dir[&port=N]` — the Unix socket in that directory.
///
/// The password is kept here as written, but the loader gives precedence to the
/// `database_password` secret; use `TTTConfiguration.secrets.databasePassword` to connect.
public struct DatabaseURL: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    public var user: String
    public var password: String?
    public var host: String?
    public var port: Int
    public var database: String
    public var socketDirectory: String?

    public static let defaultPort = 5432

    /// The socket file PostgreSQL listens on (PostgresNIO wants the file, not the folder).
    public var socketPath: String? { socketDirectory.map { "\($0)/.s.PGSQL.\(port)" } }

    public init(user: String, password: String? = nil, host: String? = nil, port: Int = DatabaseURL.defaultPort,
                database: String, socketDirectory: String? = nil) {
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.database = database
        self.socketDirectory = socketDirectory
    }

    /// Why a text is not a usable database URL; the reason never repeats the password.
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var reason: String
        public var description: String { reason }
    }

    /// Parses `text`, or nil when it is not a URL of the accepted forms.
    public init?(_ text: String) {
        guard let url = try? DatabaseURL(parsing: text) else { return nil }
        self = url
    }

    public init(parsing text: String) throws(ParseError) {
        func fail(_ reason: String) -> ParseError { ParseError(reason: reason) }
        let forms = "postgresql://user@host:port/db or postgresql://user@/db?host=/socket/dir"

        guard let scheme = ["postgresql://", "postgres://"].first(where: { text.hasPrefix($0) }) else {
            throw fail("it must start with postgresql:// (\(forms))")
        }
        var rest = Substring(text.dropFirst(scheme.count))
        guard !rest.contains("#") else { throw fail("it must not have a #fragment") }

        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let slash = rest.firstIndex(of: "/") else { throw fail("it names no database (\(forms))") }
        let authority = rest[..<slash]
        let path = rest[rest.index(after: slash)...]

        // The user part may itself contain "@" when percent-encoded only; the last "@" ends it.
        guard let at = authority.lastIndex(of: "@") else { throw fail("it names no user (\(forms))") }
        let userInfo = authority[..<at]
        let hostPort = authority[authority.index(after: at)...]

        var user = Substring(userInfo)
        var password: String?
        if let colon = userInfo.firstIndex(of: ":") {
            user = userInfo[..<colon]
            guard let decoded = Self.decoded(userInfo[userInfo.index(after: colon)...]) else {
                throw fail("its password has a malformed %-escape")
            }
            password = decoded
        }
        guard let decodedUser = Self.decoded(user), !decodedUser.isEmpty else {
            throw fail("it names no user (\(forms))")
        }

        var host: String?
        var port = Self.defaultPort
        if !hostPort.isEmpty {
            var hostPart = hostPort
            var portPart: Substring?
            if hostPort.hasPrefix("[") {  // [IPv6]:port
                guard let close = hostPort.firstIndex(of: "]") else { throw fail("its IPv6 host lacks a closing ]") }
                hostPart = hostPort[hostPort.index(after: hostPort.startIndex)..<close]
                let after = hostPort[hostPort.index(after: close)...]
                if after.hasPrefix(":") { portPart = after.dropFirst() } else if !after.isEmpty {
                    throw fail("unexpected text after the IPv6 host")
                }
            } else if let colon = hostPort.lastIndex(of: ":") {
                hostPart = hostPort[..<colon]
                portPart = hostPort[hostPort.index(after: colon)...]
            }
            guard !hostPart.isEmpty else { throw fail("it names no host (\(forms))") }
            host = Self.decoded(hostPart) ?? String(hostPart)
            if let portPart {
                guard let value = Self.port(portPart) else { throw fail("its port must be a number from 1 to 65535") }
                port = value
            }
        }

        var socketDirectory: String?
        for parameter in query.split(separator: "&") where !parameter.isEmpty {
            let pair = parameter.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = Self.decoded(pair[0]) ?? String(pair[0])
            let value = pair.count > 1 ? (Self.decoded(pair[1]) ?? String(pair[1])) : ""
            switch name {
            case "host":
                guard host == nil else { throw fail("it gives both a host and ?host=; keep one") }
                if value.hasPrefix("/") { socketDirectory = value } else if !value.isEmpty { host = value }
            case "port":
                guard let value = Self.port(Substring(value)) else {
                    throw fail("its port must be a number from 1 to 65535")
                }
                port = value
            default:
                throw fail("unsupported parameter \"\(name)\" (only host and port are understood)")
            }
        }
        guard host != nil || socketDirectory != nil else { throw fail("it names no host (\(forms))") }

        guard let database = Self.decoded(path), !database.isEmpty, !database.contains("/") else {
            throw fail("it names no database (\(forms))")
        }
        self.init(user: decodedUser, password: password, host: host, port: port,
                  database: database, socketDirectory: socketDirectory)
    }

    /// The URL with the password replaced by `***`, safe for logs and `check-config`.
    public var description: String {
        let secret = password == nil ? "" : ":***"
        if let socketDirectory {
            let portParameter = port == Self.defaultPort ? "" : "&port=\(port)"
            return "postgresql://\(user)\(secret)@/\(database)?host=\(socketDirectory)\(portParameter)"
        }
        let shownHost = (host ?? "").contains(":") ? "[\(host ?? "")]" : (host ?? "")
        return "postgresql://\(user)\(secret)@\(shownHost):\(port)/\(database)"
    }

    public var debugDescription: String { "DatabaseURL(\(description))" }

    private static func decoded(_ text: Substring) -> String? {
        String(text).removingPercentEncoding
    }

    private static func port(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(text),
              (1...65_535).contains(value)
        else { return nil }
        return value
    }
}

/// `text` with the password of a `scheme://user:password@host` URL replaced by `***`, so that a
/// URL can be quoted in a problem message without leaking what it carries.
func redactingURLPassword(_ text: String) -> String {
    guard let schemeEnd = text.range(of: "://") else { return text }
    let authorityStart = schemeEnd.upperBound
    let authorityEnd = text[authorityStart...].firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? text.endIndex
    let authority = text[authorityStart..<authorityEnd]
    guard let at = authority.lastIndex(of: "@"),
          let colon = authority[..<at].firstIndex(of: ":")
    else { return text }
    return String(text[..<authority.index(after: colon)]) + "***" + String(text[at...])
}
