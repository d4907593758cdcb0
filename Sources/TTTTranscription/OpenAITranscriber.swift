import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOPosix
import TTTDomain
import TTTHTTPReplies
import TTTMetrics

/// `POST {baseURL}/audio/transcriptions`, OpenAI's contract, which Groq, OpenAI and the
/// faster-whisper / whisper.cpp servers speak (ASR.md). One attempt per call: retrying and backing
/// off are the pipeline's job, so that it can keep the window meanwhile.
public final class OpenAITranscriber: Transcriber {
    private let http: HTTPClient
    private let url: String
    private let apiKey: String?
    private let timeout: Duration
    private let logger: Logger
    /// Requests in flight at most; fewer while the ASR cannot keep up (see AdaptiveConcurrency).
    let concurrency: AdaptiveConcurrency
    private let concurrencyGauge = Gauge(label: TTTMetric.asrConcurrency.name)
    /// A verbose_json answer for a 30 s window is a few kB; this caps a misbehaving server.
    private let maxBodyBytes = 4 * 1024 * 1024
    /// How long to wait before retrying after a configuration error (bad key, wrong URL), so that
    /// windows wait for the admin instead of being lost.
    static let configurationRetry = Duration.seconds(300)
    private let metrics = RequestMetrics(duration: TTTMetric.asrDuration, failures: TTTMetric.asrErrors,
                                         kinds: RequestFailure.allCases.filter { $0 != .invalidReply })

    /// `baseURL` with or without a trailing `/`, e.g. `https://api.groq.com/openai/v1`.
    /// `maxConnections`: requests in flight, and HTTP/1.1 connections to the ASR, at most (one
    /// request per live at a time, so as many as pipelines; AsyncHTTPClient's default of 8 would
    /// queue the rest behind them). Fewer while the ASR cannot keep up.
    public init(baseURL: String, apiKey: String?, timeout: Duration = .seconds(60), maxConnections: Int = 8, logger: Logger) {
        let milliseconds = max(1, Int64(timeout.asSeconds * 1000))
        var configuration = HTTPClient.Configuration()
        // No tracer is set up in tttd: without this, each request still builds a no-op span (~5 % of a check's CPU).
        configuration.tracing.tracer = nil
        configuration.timeout = .init(connect: .milliseconds(min(10_000, milliseconds)), read: .milliseconds(milliseconds))
        // A redirected POST would lose its body; a redirect means the base URL needs fixing.
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(8, maxConnections)
        http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
        var base = baseURL.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        url = base + "/audio/transcriptions"
        self.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
        self.timeout = timeout
        self.logger = logger
        concurrency = AdaptiveConcurrency(maximum: maxConnections)
        concurrencyGauge.record(concurrency.maximum)
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    public func transcribe(_ request: TranscriptionRequest) async throws(TranscriptionError) -> TranscriptionResult {
        let boundary = Self.makeBoundary()
        var outgoing = HTTPClientRequest(url: url)
        outgoing.method = .POST
        outgoing.headers.add(name: "Content-Type", value: "multipart/form-data; boundary=\(boundary)")
        outgoing.headers.add(name: "Accept", value: "application/json")
        if let apiKey { outgoing.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
        outgoing.body = .bytes(Self.multipartBody(request, boundary: boundary))

        let ticket: AdaptiveConcurrency.Ticket
        do { ticket = try await concurrency.acquire() } catch {
            throw .retriable(reason: "cancelled while waiting for the ASR", retryAfter: nil)
        }
        let started = ContinuousClock.now
        let (result, outcome) = await send(outgoing)
        let change = await concurrency.release(ticket, outcome)
        concurrencyGauge.record(Int(await concurrency.limit))
        switch change {
        case .cut(let limit, let waiting)?:
            logger.warning("the ASR cannot keep up: fewer requests at once", metadata: [
                "at_most": "\(limit)", "waiting": "\(waiting)"])
        case .recovered?:
            logger.notice("the ASR keeps up again", metadata: ["at_most": "\(concurrency.maximum)"])
        case nil:
            break
        }
        switch result {
        case .success(let answer):
            logger.debug("transcribed", metadata: [
                "audio_bytes": "\(request.wav.count)", "elapsed_ms": "\(Self.milliseconds(since: started))",
                "language": "\(answer.language ?? "-")", "chars": "\(answer.text.count)"])
            return answer
        case .failure(let error):
            logger.debug("transcription failed", metadata: [
                "elapsed_ms": "\(Self.milliseconds(since: started))", "error": "\(error)"])
            throw error
        }
    }

    private func send(_ request: HTTPClientRequest) async -> (Result<TranscriptionResult, TranscriptionError>, AdaptiveConcurrency.Outcome) {
        let started = ContinuousClock.now
        defer { metrics.requested(since: started) }
        let status: Int, headers: HTTPHeaders, body: [UInt8]
        do {
            let response = try await http.execute(request, deadline: .now() + .milliseconds(Int64(timeout.asSeconds * 1000)), logger: logger)
            let bytes = try await response.body.collect(upTo: maxBodyBytes)
            (status, headers, body) = (Int(response.status.code), response.headers, Array(bytes.readableBytesView))
        } catch {
            let timedOut = Self.isTimeout(error)
            metrics.failed(timedOut ? .timeout : .connection)
            return (.failure(.retriable(reason: redact(describe(error)), retryAfter: nil)), timedOut ? .overloaded : .failed)
        }
        do throws(TranscriptionError) {
            return (.success(try Self.interpret(status: status, body: body, contentType: headers.first(name: "Content-Type"),
                                                retryAfter: headers.first(name: "Retry-After"), apiKey: apiKey)), .answered)
        } catch {
            metrics.failed(RequestFailure(status: status))
            return (.failure(error), status == 429 || status == 503 ? .overloaded : .failed)
        }
    }

    private static func isTimeout(_ error: any Error) -> Bool {
        guard let error = error as? HTTPClientError else { return false }
        return [.deadlineExceeded, .readTimeout, .writeTimeout, .connectTimeout, .getConnectionFromPoolTimeout].contains(error)
    }

    private static func milliseconds(since start: ContinuousClock.Instant) -> Int {
        Int((ContinuousClock.now - start).asSeconds * 1000)
    }

    // MARK: Request

    static func makeBoundary() -> String {
        var generator = SystemRandomNumberGenerator()
        let random = (0..<2).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }
        return "tttd-" + random.joined()
    }

    /// `file`, `model`, `language` (when given), `response_format=verbose_json`, `temperature=0`,
    /// and no `prompt`: a running prompt makes a hallucination repeat itself (ASR.md).
    static func multipartBody(_ request: TranscriptionRequest, boundary: String) -> ByteBuffer {
        var body = ByteBuffer()
        body.reserveCapacity(request.wav.count + 1024)
        func field(_ name: String, _ value: String) {
            body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
        }
        field("model", request.model)
        if let language = request.language, !language.isEmpty { field("language", language) }
        field("response_format", "verbose_json")
        field("temperature", "0")
        body.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"window.wav\"\r\n"
                         + "Content-Type: audio/wav\r\n\r\n")
        body.writeBytes(request.wav)
        body.writeString("\r\n--\(boundary)--\r\n")
        return body
    }

    // MARK: Response

    static func interpret(status: Int, body: [UInt8], contentType: String?, retryAfter: String?, apiKey: String?)
        throws(TranscriptionError) -> TranscriptionResult {
        func reason(_ text: String) -> String { ServerText.redact(text, secret: apiKey) }
        let retryAfter = retryAfter.flatMap { RetryAfter.parse($0) }
        switch status {
        case 200..<300:
            switch parse(body, contentType: contentType) {
            case .success(let result): return result
            case .failure(let problem): throw .retriable(reason: reason(problem.reason), retryAfter: nil)
            }
        case 429:
            let after = retryAfter.map { " (retry after \(ServerText.seconds($0))s)" } ?? ""
            throw .retriable(reason: reason("HTTP 429\(after): \(ServerText.snippet(body))"), retryAfter: retryAfter)
        case 401, 403, 404, 300..<400:
            throw .retriable(reason: reason("HTTP \(status): \(ServerText.snippet(body))"),
                             retryAfter: max(retryAfter ?? .zero, configurationRetry))
        case 408, 425, 500...:
            throw .retriable(reason: reason("HTTP \(status): \(ServerText.snippet(body))"), retryAfter: retryAfter)
        case 400..<500:
            throw .rejected(reason: reason("HTTP \(status): \(ServerText.snippet(body))"))
        default:
            throw .retriable(reason: "HTTP \(status)", retryAfter: retryAfter)
        }
    }

    /// Why a 2xx body is not a transcription.
    struct BodyProblem: Error { var reason: String }

    private struct VerboseJSON: Decodable {
        var text: String
        var language: String?
        var languageProbability: Double?
        var duration: Double?
        var segments: [TranscriptSegment]?
        /// faster-whisper servers that were given the language can detect it too (scripts/asr).
        var detectedLanguage: String?
        var detectedLanguageProbability: Double?

        enum CodingKeys: String, CodingKey {
            case text, language, duration, segments
            case languageProbability = "language_probability"
            case detectedLanguage = "detected_language"
            case detectedLanguageProbability = "detected_language_probability"
        }
    }

    static func parse(_ body: [UInt8], contentType: String?) -> Result<TranscriptionResult, BodyProblem> {
        let first = body.first { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D) }
        if first == UInt8(ascii: "<") || contentType?.lowercased().contains("html") == true {
            return .failure(BodyProblem(reason: "not JSON (an HTML page\(ServerText.htmlTitle(body).map { ": \($0)" } ?? ""))"))
        }
        guard first != nil else { return .failure(BodyProblem(reason: "empty body")) }
        let answer: VerboseJSON
        do {
            answer = try JSONDecoder().decode(VerboseJSON.self, from: Data(body))
        } catch DecodingError.keyNotFound(let key, _) {
            return .failure(BodyProblem(reason: "unexpected JSON: no \(key.stringValue): \(ServerText.snippet(body))"))
        } catch DecodingError.typeMismatch(_, let context), DecodingError.valueNotFound(_, let context) {
            let path = context.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")
            return .failure(BodyProblem(reason: "unexpected JSON at \(path): \(ServerText.snippet(body))"))
        } catch {
            return .failure(BodyProblem(reason: "malformed JSON: \(ServerText.snippet(body))"))
        }
        // A language the server detected beats one it was told (then reported with p = 1).
        let detected = answer.detectedLanguage.flatMap(WhisperLanguage.code(for:))
        return .success(TranscriptionResult(
            text: answer.text.trimmingCharacters(in: .whitespacesAndNewlines),
            language: detected ?? answer.language.flatMap(WhisperLanguage.code(for:)),
            languageProbability: detected != nil ? answer.detectedLanguageProbability : answer.languageProbability,
            duration: answer.duration,
            segments: answer.segments ?? []))
    }

    private func redact(_ text: String) -> String { ServerText.redact(text, secret: apiKey) }

    private func describe(_ error: any Error) -> String {
        TransportFailure.describe(error, timeout: timeout, url: url, maxBodyBytes: maxBodyBytes)
    }
}
