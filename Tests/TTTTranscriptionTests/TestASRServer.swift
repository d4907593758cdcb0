import Hummingbird
import Logging
import Testing

/// A real HTTP server on a free port of 127.0.0.1 answering `POST /v1/audio/transcriptions` with
/// `respond`, for the duration of `test`, which gets the base URL to give the transcriber.
func withTestASR(_ respond: @escaping @Sendable (Request) async throws -> Response,
                 _ test: (_ baseURL: String) async throws -> Void) async throws {
    let router = Router()
    router.post("v1/audio/transcriptions") { request, _ in try await respond(request) }
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
            continuation.finish()
        },
        logger: Logger(label: "test-asr", factory: { _ in SwiftLogNoOpLogHandler() }))
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        defer { group.cancelAll() }
        try await test("http://127.0.0.1:\(port)/v1")
    }
}
