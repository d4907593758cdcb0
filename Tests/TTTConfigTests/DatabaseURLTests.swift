import Testing
@testable import TTTConfig

@Suite struct DatabaseURLTests {
    @Test func tcpForm() throws {
        let url = try DatabaseURL(parsing: "postgresql://alice:s%40cret@db.example.org:5433/watch")
        #expect(url == DatabaseURL(user: "alice", password: "s@cret", host: "db.example.org", port: 5433, database: "watch"))
        #expect(url.socketPath == nil)
    }

    @Test func tcpFormDefaultPort() throws {
        let url = try DatabaseURL(parsing: "postgres://tttd@localhost/tttd")
        #expect(url == DatabaseURL(user: "tttd", host: "localhost", port: 5432, database: "tttd"))
        #expect(url.description == "postgresql://tttd@localhost:5432/tttd")
    }

    @Test func ipv6Host() throws {
        let url = try DatabaseURL(parsing: "postgresql://tttd@[::1]:6543/tttd")
        #expect(url.host == "::1")
        #expect(url.port == 6543)
        #expect(url.description == "postgresql://tttd@[::1]:6543/tttd")
    }

    @Test func socketForm() throws {
        let url = try DatabaseURL(parsing: "postgresql://tttd@/tttd?host=/run/postgresql")
        #expect(url == DatabaseURL(user: "tttd", host: nil, port: 5432, database: "tttd", socketDirectory: "/run/postgresql"))
        #expect(url.socketPath == "/run/postgresql/.s.PGSQL.5432")
        #expect(url.description == "postgresql://tttd@/tttd?host=/run/postgresql")
    }

    @Test func socketFormWithPortParameter() throws {
        let url = try DatabaseURL(parsing: "postgresql://tttd@/tttd?host=/work/.run/pg&port=5499")
        #expect(url.port == 5499)
        #expect(url.socketPath == "/work/.run/pg/.s.PGSQL.5499")
        #expect(url.description == "postgresql://tttd@/tttd?host=/work/.run/pg&port=5499")
        #expect(try DatabaseURL(parsing: url.description) == url)
    }

    @Test func descriptionRedactsThePassword() throws {
        let url = try DatabaseURL(parsing: "postgresql://alice:hunter2@db:5432/watch")
        #expect(url.password == "hunter2")
        #expect(url.description == "postgresql://alice:***@db:5432/watch")
        #expect(!url.debugDescription.contains("hunter2"))
        #expect(!String(describing: url).contains("hunter2"))
        #expect(!String(reflecting: url).contains("hunter2"))
    }

    @Test(arguments: [
        "mysql://u@h/db", "postgresql://h/db", "postgresql://u@h", "postgresql://u@h/", "postgresql://u@/db",
        "postgresql://u@h:0/db", "postgresql://u@h:port/db", "postgresql://u@h/db?sslmode=require",
        "postgresql://u@h/db?host=/run/postgresql", "postgresql://:pw@h/db",
    ])
    func refuses(text: String) {
        #expect(DatabaseURL(text) == nil)
    }

    @Test func errorNeverRepeatsThePassword() {
        #expect(throws: DatabaseURL.ParseError.self) { try DatabaseURL(parsing: "postgresql://u:topsecret@h/db?x=1") }
        do {
            _ = try DatabaseURL(parsing: "postgresql://u:topsecret@h/db?x=1")
        } catch {
            #expect(!error.reason.contains("topsecret"))
        }
    }
}
