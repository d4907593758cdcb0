import AsyncHTTPClient
import Crypto
import Foundation
import Hummingbird
import HTTPTypes
import Logging
import NIOCore
import Testing
@testable import TTTAlerts

private let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

private var quietLogger: Logger {
    var logger = Logger(label: "tttd-webhook-test")
    logger.logLevel = .critical
    return logger
}

/// One request as the receiver saw it, and what it made of the Standard Webhooks headers.
private struct Delivery: Sendable {
    var id: String?
    var timestamp: Int?
    var signature: String?
    var contentType: String?
    var body: [UInt8]
    /// The signature matched id.timestamp.body under the secret, and the timestamp was within 5 minutes.
    var verified: Bool
}

/// How the receiver answers its next requests (then 200 OK).
private struct Answer: Sendable {
    var status: HTTPResponse.Status = .ok
    var headers: HTTPFields = [:]
    var body: String = ""
    var delay: Duration?
}

private actor Receiver {
    var deliveries: [Delivery] = []
    var script: [Answer]
    init(script: [Answer]) { self.script = script }
    func record(_ delivery: Delivery) -> Answer {
        deliveries.append(delivery)
        return script.isEmpty ? Answer() : script.removeFirst()
    }
}

/// Verifies a Standard Webhooks request the way a receiver's library does: the secret's base64
/// key, HMAC-SHA256 over "id.timestamp.body", any of the space-separated "v1,…" signatures, and a
/// timestamp within the 5-minute tolerance.
private func verify(id: String?, timestamp: String?, signatures: String?, body: [UInt8], secret: String) -> Bool {
    guard let id, let timestamp, let seconds = Int(timestamp), let signatures,
          let key = Data(base64Encoded: String(secret.dropFirst("whsec_".count))) else { return false }
    guard abs(Int(Date().timeIntervalSince1970) - seconds) <= 300 else { return false }
    var signed = Data("\(id).\(timestamp).".utf8)
    signed.append(contentsOf: body)
    let expected = Data(HMAC<SHA256>.authenticationCode(for: signed, using: SymmetricKey(data: key)))
    return signatures.split(separator: " ").contains { candidate in
        candidate.hasPrefix("v1,") && Data(base64Encoded: String(candidate.dropFirst(3))) == expected
    }
}

/// A real webhook receiver on a free port of 127.0.0.1 (Hummingbird), for the duration of `test`,
/// and an HTTP client of its own configured as the daemon's (a shared client's pooled connection
/// to an earlier test's receiver, on a port the system hands out again, could take this request).
/// With a secret the receiver refuses (401) a request whose signature does not verify.
private func withReceiver(secret: String? = secret, _ script: [Answer] = [],
                          _ test: (_ url: String, _ receiver: Receiver, _ client: HTTPClient) async throws -> Void) async throws {
    let receiver = Receiver(script: script)
    let router = Router()
    router.post("hooks/tttd") { request, _ -> Response in
        var request = request
        let body = Array(try await request.collectBody(upTo: 1 << 20).readableBytesView)
        let header = { (name: String) in request.headers[HTTPField.Name(name)!] }
        let verified = secret.map {
            verify(id: header("webhook-id"), timestamp: header("webhook-timestamp"), signatures: header("webhook-signature"), body: body, secret: $0)
        } ?? false
        let answer = await receiver.record(Delivery(
            id: header("webhook-id"), timestamp: header("webhook-timestamp").flatMap { Int($0) },
            signature: header("webhook-signature"), contentType: header("content-type"), body: body, verified: verified))
        if secret != nil && !verified {
            return Response(status: .unauthorized, body: .init(byteBuffer: ByteBuffer(string: "bad signature")))
        }
        if let delay = answer.delay { try await Task.sleep(for: delay) }
        return Response(status: answer.status, headers: answer.headers, body: .init(byteBuffer: ByteBuffer(string: answer.body)))
    }
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            continuation.yield(channel.localAddress?.port ?? 0)
            continuation.finish()
        },
        logger: quietLogger)
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await app.run() }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        defer { group.cancelAll() }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: WebhookNotifier.httpClientConfiguration)
        do {
            try await test("http://127.0.0.1:\(port)/hooks/tttd", receiver, client)
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }
}

private let event = Array(#"{"type":"alert","id":42,"username":"koro_bf","risk_score":0.92,"text":"Débat \u00e9 ✓"}"#.utf8)

/// The error a delivery throws (nil when delivered); the secret is never in it.
private func attempt(_ notifier: WebhookNotifier, id: String = "dlv_01HQ-42-webhook-ops") async -> DeliveryError? {
    do {
        try await notifier.deliver(event: event, type: "alert", deliveryID: id)
        return nil
    } catch {
        #expect(!error.description.contains(secret) && !error.description.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"))
        return error
    }
}

@Suite struct WebhookNotifierTests {
    @Test func deliversTheEventSignedWithTheStandardHeaders() async throws {
        try await withReceiver { url, receiver, client in
            let notifier = WebhookNotifier(name: "ops", url: url, secret: secret, httpClient: client)
            #expect(notifier.channel == "webhook:ops")
            let error = await attempt(notifier)
            #expect(error == nil, "\(String(describing: error))")
            let deliveries = await receiver.deliveries
            try #require(deliveries.count == 1)
            let delivery = deliveries[0]
            #expect(delivery.verified)
            #expect(delivery.body == event)   // byte for byte: the signature covers these bytes
            #expect(delivery.id == "dlv_01HQ-42-webhook-ops")
            #expect(delivery.contentType == "application/json")
            // Now, to within Standard Webhooks' own tolerance (5 minutes), not to the second on a loaded machine.
            #expect(abs((delivery.timestamp ?? 0) - Int(Date().timeIntervalSince1970)) <= 60)
            #expect(delivery.signature?.hasPrefix("v1,") == true)
        }
    }

    @Test func aServerErrorIsRetriableAndTheRetryKeepsTheWebhookID() async throws {
        try await withReceiver([Answer(status: .internalServerError, body: "database down")]) { url, receiver, client in
            let notifier = WebhookNotifier(name: "ops", url: url, secret: secret, httpClient: client)
            let first = await attempt(notifier)
            guard case .retriable(let reason, let retryAfter)? = first else {
                Issue.record("expected retriable, got \(String(describing: first))"); return
            }
            #expect(reason.contains("500") && reason.contains("database down") && reason.contains("webhook ops"))
            #expect(retryAfter == nil)
            let error = await attempt(notifier)
            #expect(error == nil, "\(String(describing: error))")
            let deliveries = await receiver.deliveries
            #expect(deliveries.count == 2)
            #expect(deliveries.allSatisfy { $0.verified && $0.id == "dlv_01HQ-42-webhook-ops" && $0.body == event })
        }
    }

    @Test func tooManyRequestsHonoursRetryAfter() async throws {
        try await withReceiver([Answer(status: .tooManyRequests, headers: [HTTPField.Name("Retry-After")!: "7"])]) { url, _, client in
            let notifier = WebhookNotifier(name: "ops", url: url, secret: secret, httpClient: client)
            let error = await attempt(notifier)
            guard case .retriable(let reason, let retryAfter)? = error else {
                Issue.record("expected retriable, got \(String(describing: error))"); return
            }
            #expect(reason.contains("429"))
            #expect(retryAfter == .seconds(7))
        }
    }

    /// Kept as asked, 10^12 s put the delivery's next attempt 30,000 years away: pending forever,
    /// never retried and never given up.
    @Test func aRetryAfterOfYearsIsADay() async throws {
        let asked: HTTPFields = [HTTPField.Name("Retry-After")!: "1000000000000"]
        try await withReceiver([Answer(status: .serviceUnavailable, headers: asked)]) { url, _, client in
            let error = await attempt(WebhookNotifier(name: "ops", url: url, secret: secret, httpClient: client))
            guard case .retriable(_, let retryAfter)? = error else {
                Issue.record("expected retriable, got \(String(describing: error))"); return
            }
            #expect(retryAfter == .seconds(86_400))
        }
    }

    @Test(arguments: [(HTTPResponse.Status.gone, false), (.badRequest, false), (.notFound, false), (.unauthorized, false),
                      (.requestTimeout, true), (.badGateway, true), (.serviceUnavailable, true)])
    func statusesAreClassified(status: HTTPResponse.Status, retriable: Bool) async throws {
        try await withReceiver([Answer(status: status, body: "{\"error\":\"endpoint \(status.code)\"}")]) { url, receiver, client in
            let notifier = WebhookNotifier(name: "ops", url: url, secret: secret, httpClient: client)
            let error = try #require(await attempt(notifier))
            #expect(error.isRetriable == retriable, "\(status.code): \(error)")
            #expect(error.reason.contains("\(status.code)"))
            #expect(error.reason.contains("endpoint \(status.code)"))   // the start of the body
            #expect(await receiver.deliveries.count == 1)
        }
    }

    @Test func anUnreachableReceiverIsRetriable() async throws {
        // Port 1 on the loopback: nothing listens there, the connection is refused.
        let notifier = WebhookNotifier(name: "ops", url: "http://127.0.0.1:1/hooks", secret: secret, httpClient: .shared,
                                       timeout: .seconds(1))
        let error = try #require(await attempt(notifier))
        #expect(error.isRetriable, "\(error)")
        #expect(error.reason.contains("webhook ops (127.0.0.1)"))
    }

    @Test func aSlowReceiverTimesOutAndIsRetriable() async throws {
        try await withReceiver([Answer(delay: .seconds(3))]) { url, _, client in
            let notifier = WebhookNotifier(name: "ops", url: url, secret: secret, httpClient: client, timeout: .milliseconds(400))
            let error = try #require(await attempt(notifier))
            #expect(error.isRetriable, "\(error)")
        }
    }

    @Test func withoutASecretTheEventIsDeliveredUnsigned() async throws {
        try await withReceiver(secret: nil) { url, receiver, client in
            let notifier = WebhookNotifier(name: "open", url: url, secret: nil, httpClient: client)
            #expect(!notifier.isSigned)
            let error = await attempt(notifier)
            #expect(error == nil, "\(String(describing: error))")
            let delivery = try #require(await receiver.deliveries.first)
            #expect(delivery.signature == nil)
            #expect(delivery.id == "dlv_01HQ-42-webhook-ops" && delivery.timestamp != nil && delivery.body == event)
        }
    }

    @Test func anUnusableSecretOrURLIsPermanentAndSendsNothing() async throws {
        try await withReceiver { url, receiver, client in
            let badSecret = WebhookNotifier(name: "ops", url: url, secret: "whsec_***not base64***", httpClient: client)
            let error = try #require(await attempt(badSecret))
            #expect(!error.isRetriable)
            #expect(!error.reason.contains("not base64***"))
            #expect(await receiver.deliveries.isEmpty)
        }
        let ftp = WebhookNotifier(name: "ops", url: "ftp://127.0.0.1/x", secret: nil, httpClient: .shared)
        #expect(await attempt(ftp)?.isRetriable == false)
    }

    @Test func theURLsPathAndQueryStayOutOfReasons() async throws {
        let notifier = WebhookNotifier(name: "chat", url: "http://127.0.0.1:1/services/T000/B000/XXXXtoken?key=abc",
                                       secret: nil, httpClient: .shared, timeout: .seconds(1))
        let error = try #require(await attempt(notifier))
        #expect(!error.reason.contains("XXXXtoken") && !error.reason.contains("key=abc"), "\(error)")
    }

    @Test func aRedirectIsNotFollowedWithTheRecommendedClient() async throws {
        try await withReceiver([Answer(status: .found, headers: [HTTPField.Name("Location")!: "/elsewhere"])]) { url, receiver, client in
            let notifier = WebhookNotifier(name: "ops", url: url, secret: secret, httpClient: client)
            let error = try #require(await attempt(notifier))
            #expect(!error.isRetriable && error.reason.contains("302"), "\(error)")
            #expect(await receiver.deliveries.count == 1)
        }
    }
}
