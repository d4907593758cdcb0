import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import TTTHTTPReplies

/// Delivers events to an HTTP endpoint as Standard Webhooks (standardwebhooks.com): a POST whose
/// body is the event's JSON bytes exactly as given, with the headers `webhook-id` (the delivery
/// id, the same on every retry so that the receiver can drop duplicates), `webhook-timestamp`
/// (Unix seconds when this attempt is sent) and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
/// id.timestamp.body>` keyed with the `whsec_` secret), and `content-type: application/json`.
///
/// Outcomes: a 2xx is delivered; 408, 429, 5xx, timeouts and connection failures are retriable
/// (a `Retry-After` header, seconds or an HTTP date, is passed on); any other status (3xx, 4xx) is
/// permanent, with the status and the start of the response body. Without a secret the event is
/// still delivered, unsigned. Reasons never contain the secret, the signature, or the URL's path
/// and query (webhook URLs often carry a token there): only the channel name and the host.
public struct WebhookNotifier: Notifier {
    public let name: String
    public var channel: String { "webhook:\(name)" }

    private let url: String
    private let host: String
    private let signer: Result<WebhookSigner, WebhookSigner.SecretError>?
    private let httpClient: HTTPClient
    private let timeout: Duration
    /// The clock for `webhook-timestamp` (tests move it).
    var now: @Sendable () -> Date = { Date() }

    /// At most this much of a refusing receiver's body goes into the reason.
    static let bodySnippetBytes = 512

    public init(name: String, url: String, secret: String?, httpClient: HTTPClient, timeout: Duration = .seconds(15)) {
        self.name = name
        self.url = url
        self.host = URLComponents(string: url)?.host ?? "?"
        if let secret, !secret.isEmpty {
            do throws(WebhookSigner.SecretError) {
                signer = .success(try WebhookSigner(secret: secret))
            } catch {
                signer = .failure(error)
            }
        } else {
            signer = nil
        }
        self.httpClient = httpClient
        self.timeout = timeout
    }

    /// The configuration the daemon's webhook HTTPClient should have: redirects are not followed
    /// (AsyncHTTPClient would turn a 301/302 into a GET without the body, and a 2xx at the end of
    /// it would count as delivered though the event never arrived; a 3xx is reported, permanent,
    /// instead), 10 s to connect. Use: `HTTPClient(eventLoopGroupProvider: .singleton,
    /// configuration: WebhookNotifier.httpClientConfiguration)`, shut down at exit.
    public static var httpClientConfiguration: HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        // No tracer is set up in tttd: without this, each request still builds a no-op span (~5 % of a check's CPU).
        configuration.tracing.tracer = nil
        configuration.redirectConfiguration = .disallow
        configuration.timeout = .init(connect: .seconds(10))
        return configuration
    }

    /// Whether the event is signed (a secret was given).
    public var isSigned: Bool { signer != nil }

    public func deliver(event: [UInt8], type: String, deliveryID: String) async throws(DeliveryError) {
        let prefix = "webhook \(name) (\(host))"
        guard let parsed = URLComponents(string: url), let scheme = parsed.scheme?.lowercased(),
              scheme == "http" || scheme == "https", parsed.host?.isEmpty == false else {
            throw .permanent("\(prefix): the URL is not an http:// or https:// URL")
        }
        let timestamp = Int(now().timeIntervalSince1970)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.headers.add(name: "user-agent", value: "tttd")
        request.headers.add(name: "webhook-id", value: deliveryID)
        request.headers.add(name: "webhook-timestamp", value: String(timestamp))
        switch signer {
        case .success(let signer)?:
            request.headers.add(name: "webhook-signature",
                                value: signer.signature(id: deliveryID, timestamp: timestamp, body: event))
        case .failure(let error)?:
            throw .permanent("\(prefix): the secret is unusable: \(error)")
        case nil:
            break
        }
        request.body = .bytes(event)

        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: TimeAmount(timeout))
        } catch let error as HTTPClientError {
            let misconfigured: [HTTPClientError] = [.invalidURL, .emptyHost, .emptyScheme, .missingSocketPath]
            let timedOut: [HTTPClientError] = [.deadlineExceeded, .readTimeout, .writeTimeout, .connectTimeout,
                                               .tlsHandshakeTimeout, .getConnectionFromPoolTimeout]
            let text = "\(error)"
            if misconfigured.contains(error) || text.contains("unsupportedScheme") || text.contains("invalidHeaderField") {
                throw .permanent("\(prefix): \(text)")
            }
            if timedOut.contains(error) {
                throw .retriable("\(prefix): no answer within \(timeout.components.seconds) s (\(text))", retryAfter: nil)
            }
            throw .retriable("\(prefix): \(text)", retryAfter: nil)
        } catch {
            // Connection refused or reset, DNS, TLS: the receiver may be back later.
            throw .retriable("\(prefix): \(error)", retryAfter: nil)
        }

        let status = response.status.code
        let body = await Self.readSnippet(response.body)
        if (200..<300).contains(status) { return }
        let detail = body.isEmpty ? "" : ": \(snippet(body))"
        let reason = "\(prefix) answered \(status) \(response.status.reasonPhrase)\(detail)"
        if status == 408 || status == 429 || (500..<600).contains(status) {
            let retryAfter = response.headers.first(name: "retry-after").flatMap { RetryAfter.parse($0, now: now()) }
            throw .retriable(reason, retryAfter: retryAfter)
        }
        throw .permanent(reason)
    }

    /// The start of a response body (the rest is read and dropped); "" when it cannot be read.
    private static func readSnippet(_ body: HTTPClientResponse.Body) async -> String {
        var kept: [UInt8] = []
        do {
            for try await chunk in body where kept.count < bodySnippetBytes {
                kept += chunk.readableBytesView.prefix(bodySnippetBytes - kept.count)
            }
        } catch {
            // A body cut short says nothing more about the outcome than the status did.
        }
        return String(decoding: kept, as: UTF8.self)
    }
}
