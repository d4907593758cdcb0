import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Synchronization
import TTTDomain
import TTTHTTPReplies
import TTTMetrics

/// `POST {baseURL}/chat/completions`, the contract Groq, OpenAI, Cerebras, Mistral, vLLM,
/// llama.cpp's server and Ollama speak (ANALYSIS.md). Asks for a strict JSON schema first, falls
/// back to JSON mode then to the prompt alone when the server answers 400 about the response
/// format, and remembers per model what worked. A reply that does not validate is asked again
/// (fresh delimiters) up to `maxAttempts` requests in all; transport and server failures are not
/// retried here but thrown as `.retriable`, so that the window waits in the caller's backlog.
public final class OpenAIChatAnalyzer: Analyzer {
    private let http: HTTPClient
    private let url: String
    private let apiKey: String?
    public let model: String
    private let temperature: Double
    public let prompt: PromptTemplate
    private let timeout: Duration
    private let maxAttempts: Int
    private let logger: Logger
    private let pacer: RequestPacer?
    /// Model → the strongest response format the server accepted for it.
    private let modes = Mutex<[String: StructuredMode]>([:])
    /// A verdict is a few hundred bytes; this caps a misbehaving server.
    private let maxBodyBytes = 4 * 1024 * 1024
    /// How long to wait before retrying after a configuration error (bad key, wrong URL or
    /// model), so that windows wait for the admin instead of being lost.
    static let configurationRetry = Duration.seconds(300)
    private let metrics = RequestMetrics(duration: TTTMetric.llmDuration, failures: TTTMetric.llmErrors,
                                         kinds: RequestFailure.allCases)

    /// `baseURL` with or without a trailing `/`, e.g. `https://api.groq.com/openai/v1`; `timeout`
    /// bounds each request.
    public init(baseURL: String, apiKey: String?, model: String, temperature: Double, prompt: PromptTemplate,
                timeout: Duration = .seconds(60), maxAttempts: Int = 3, pacer: RequestPacer? = nil, logger: Logger) {
        self.pacer = pacer
        let milliseconds = max(1, Int64(timeout.asSeconds * 1000))
        var configuration = HTTPClient.Configuration()
        // No tracer is set up in tttd: without this, each request still builds a no-op span (~5 % of a check's CPU).
        configuration.tracing.tracer = nil
        configuration.timeout = .init(connect: .milliseconds(min(10_000, milliseconds)), read: .milliseconds(milliseconds))
        // A redirected POST would lose its body; a redirect means the base URL needs fixing.
        configuration.redirectConfiguration = .disallow
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        var base = baseURL.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        url = base + "/chat/completions"
        self.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
        self.model = model
        self.temperature = temperature
        self.prompt = prompt
        self.timeout = timeout
        self.maxAttempts = max(1, maxAttempts)
        self.logger = logger
    }

    public func shutdown() async {
        try? await http.shutdown()
    }

    /// The response format the next request for this analyzer's model starts with.
    public var structuredMode: StructuredMode {
        modes.withLock { $0[model] ?? .jsonSchema }
    }

    public func analyze(_ request: AnalysisRequest) async throws(AnalysisError) -> AnalysisOutcome {
        let started = ContinuousClock.now
        var mode = structuredMode
        var attempts = 0
        var last = (reason: "no reply", raw: "")
        while attempts < maxAttempts {
            let rendered = prompt.render(transcript: request.transcript, context: request.context)
            var outgoing = HTTPClientRequest(url: url)
            outgoing.method = .POST
            outgoing.headers.add(name: "Content-Type", value: "application/json")
            outgoing.headers.add(name: "Accept", value: "application/json")
            if let apiKey { outgoing.headers.add(name: "Authorization", value: "Bearer \(apiKey)") }
            outgoing.body = .bytes(ByteBuffer(string: Self.requestBody(model: model, temperature: temperature,
                                                                       prompt: rendered, mode: mode)))
            let reply: Reply
            do throws(AnalysisError) {
                reply = try await send(outgoing, mode: mode)
            } catch {
                logger.debug("analysis request failed", metadata: [
                    "elapsed_ms": "\(Self.milliseconds(since: started))", "error": "\(error)"])
                throw error
            }
            switch reply {
            case .unsupported(let reason):
                // Not an attempt: the same reply is asked for in a weaker format.
                metrics.failed(.rejected)
                guard let weaker = mode.fallback else {
                    throw .invalid(reason: reason, raw: "", attempts: attempts + 1)
                }
                remember(weaker, because: reason, instead: mode)
                mode = weaker
            case .rejected(let reason, let raw):
                metrics.failed(.rejected)
                throw .invalid(reason: reason, raw: raw, attempts: attempts + 1)
            case .unusable(let reason, let raw):
                metrics.failed(.invalidReply)
                attempts += 1
                last = (reason, raw)
                logger.debug("analysis reply unusable", metadata: ["attempt": "\(attempts)", "reason": "\(reason)"])
            case .content(let raw):
                attempts += 1
                do {
                    let verdict = try VerdictParser.parse(raw)
                    let elapsed = Self.milliseconds(since: started)
                    logger.debug("analysed", metadata: [
                        "elapsed_ms": "\(elapsed)", "mode": "\(mode.rawValue)", "attempts": "\(attempts)",
                        "category": "\(verdict.category.rawValue)"])
                    return AnalysisOutcome(verdict: verdict, raw: raw, model: model, mode: mode, attempts: attempts,
                                           promptSHA256: prompt.sha256, milliseconds: elapsed)
                } catch {
                    metrics.failed(.invalidReply)
                    last = (error.reason, raw)
                    logger.debug("analysis reply invalid", metadata: ["attempt": "\(attempts)", "reason": "\(error.reason)"])
                }
            }
        }
        throw .invalid(reason: last.reason, raw: last.raw, attempts: attempts)
    }

    /// Records a weaker format for the model, unless another call already went weaker.
    private func remember(_ weaker: StructuredMode, because reason: String, instead mode: StructuredMode) {
        let changed = modes.withLock { modes -> Bool in
            let current = modes[model] ?? .jsonSchema
            guard weaker.strength < current.strength else { return false }
            modes[model] = weaker
            return true
        }
        if changed {
            logger.warning("chat endpoint refuses response_format \(mode.rawValue) for this model: using \(weaker.rawValue) from now on",
                           metadata: ["model": "\(model)", "reason": "\(reason)"])
        }
    }

    private func send(_ request: HTTPClientRequest, mode: StructuredMode) async throws(AnalysisError) -> Reply {
        let status: Int, headers: HTTPHeaders, body: [UInt8]
        // The pacer's wait is not the request's duration.
        do { try await pacer?.wait() } catch { throw .retriable(reason: "cancelled", retryAfter: nil) }
        let started = ContinuousClock.now
        defer { metrics.requested(since: started) }
        do {
            let response = try await http.execute(request, deadline: .now() + .milliseconds(Int64(timeout.asSeconds * 1000)),
                                                  logger: logger)
            let bytes = try await response.body.collect(upTo: maxBodyBytes)
            (status, headers, body) = (Int(response.status.code), response.headers, Array(bytes.readableBytesView))
        } catch {
            metrics.failed(Self.isTimeout(error) ? .timeout : .connection)
            throw .retriable(reason: redact(describe(error)), retryAfter: nil)
        }
        do throws(AnalysisError) {
            return try Self.interpret(status: status, body: body, contentType: headers.first(name: "Content-Type"),
                                      retryAfter: headers.first(name: "Retry-After"), mode: mode, apiKey: apiKey)
        } catch {
            metrics.failed(RequestFailure(status: status))
            throw error
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

    static func requestBody(model: String, temperature: Double, prompt: RenderedPrompt, mode: StructuredMode) -> String {
        var members: [(String, JSONValue)] = [
            ("model", .string(model)),
            ("temperature", .number(temperature)),
            ("messages", .array([
                .object([("role", .string("system")), ("content", .string(prompt.system))]),
                .object([("role", .string("user")), ("content", .string(prompt.user))]),
            ])),
        ]
        switch mode {
        case .jsonSchema:
            members.append(("response_format", .object([
                ("type", .string("json_schema")),
                ("json_schema", .object([
                    ("name", .string("verdict")),
                    ("strict", .bool(true)),
                    ("schema", verdictSchema),
                ])),
            ])))
        case .jsonObject:
            members.append(("response_format", .object([("type", .string("json_object"))])))
        case .plain:
            break
        }
        return JSONValue.object(members).serialized
    }

    /// The verdict's JSON schema: closed enums, every key required, nothing else. The evidence
    /// and the justification come first: constrained decoders write properties in schema order,
    /// and a model that has quoted and reasoned before it labels labels better.
    static let verdictSchema: JSONValue = {
        func enumeration(_ values: [String], nullable: Bool) -> JSONValue {
            .object([
                ("type", nullable ? .array([.string("string"), .string("null")]) : .string("string")),
                ("enum", .array(values.map(JSONValue.string) + (nullable ? [.null] : []))),
            ])
        }
        let properties: [(String, JSONValue)] = [
            ("citation", .object([("type", .array([.string("string"), .string("null")]))])),
            ("justification", .object([("type", .string("string"))])),
            ("tentative_manipulation", .object([("type", .string("boolean"))])),
            ("categorie", enumeration(Verdict.Category.allCases.map(\.french), nullable: false)),
            ("viralite", enumeration(Verdict.Virality.allCases.map(\.french), nullable: false)),
            ("discours_haineux", .object([("type", .string("boolean"))])),
            ("cible", enumeration(Verdict.Target.allCases.map(\.french), nullable: true)),
            ("type", enumeration(Verdict.HateType.allCases.map(\.french), nullable: true)),
        ]
        return .object([
            ("type", .string("object")),
            ("properties", .object(properties)),
            ("required", .array(properties.map { .string($0.0) })),
            ("additionalProperties", .bool(false)),
        ])
    }()

    // MARK: Response

    /// What one HTTP exchange gave.
    enum Reply: Equatable {
        /// The model's text (`choices[0].message.content`, or Groq's `failed_generation`).
        case content(String)
        /// An answer without usable text (no content, a refusal): counts as an invalid reply.
        case unusable(reason: String, raw: String)
        /// A 400 about the response format: try the next weaker one.
        case unsupported(reason: String)
        /// A 4xx that retrying cannot fix (not about the format).
        case rejected(reason: String, raw: String)
    }

    static func interpret(status: Int, body: [UInt8], contentType: String?, retryAfter: String?, mode: StructuredMode,
                          apiKey: String?) throws(AnalysisError) -> Reply {
        func clean(_ text: String) -> String { ServerText.redact(text, secret: apiKey) }
        let retryAfter = retryAfter.flatMap { RetryAfter.parse($0) }
        let text = String(decoding: body, as: UTF8.self)
        switch status {
        case 200..<300:
            return try completion(body, contentType: contentType, apiKey: apiKey)
        case 400, 422:
            let json = JSONValue.parse(Data(body))
            let error = json?["error"]
            // Groq's JSON mode: the model answered, the server's validation did not accept it.
            if let generation = error?["failed_generation"]?.string {
                return .content(clean(generation))
            }
            if error?["code"]?.string == "json_validate_failed" {
                return .unusable(reason: clean("HTTP \(status): \(ServerText.snippet(body))"), raw: clean(text))
            }
            if mode != .plain, aboutResponseFormat(text) {
                return .unsupported(reason: clean("HTTP \(status): \(ServerText.snippet(body))"))
            }
            return .rejected(reason: clean("HTTP \(status): \(ServerText.snippet(body))"), raw: clean(text))
        case 429:
            let after = retryAfter.map { " (retry after \(ServerText.seconds($0))s)" } ?? ""
            throw .retriable(reason: clean("HTTP 429\(after): \(ServerText.snippet(body))"), retryAfter: retryAfter)
        case 401, 403, 404, 300..<400:
            throw .retriable(reason: clean("HTTP \(status): \(ServerText.snippet(body))"),
                             retryAfter: max(retryAfter ?? .zero, configurationRetry))
        case 408, 409, 425, 500...:
            throw .retriable(reason: clean("HTTP \(status): \(ServerText.snippet(body))"), retryAfter: retryAfter)
        case 400..<500:
            return .rejected(reason: clean("HTTP \(status): \(ServerText.snippet(body))"), raw: clean(text))
        default:
            throw .retriable(reason: "HTTP \(status)", retryAfter: retryAfter)
        }
    }

    /// `choices[0].message.content` of a 2xx answer (a string, or text parts joined). Reasoning
    /// models may put JSON in `reasoning`: that is not the answer and is ignored.
    static func completion(_ body: [UInt8], contentType: String?, apiKey: String?) throws(AnalysisError) -> Reply {
        func clean(_ text: String) -> String { ServerText.redact(text, secret: apiKey) }
        let first = body.first { !($0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D) }
        if first == UInt8(ascii: "<") || contentType?.lowercased().contains("html") == true {
            throw .retriable(reason: clean("not JSON (an HTML page\(ServerText.htmlTitle(body).map { ": \($0)" } ?? ""))"), retryAfter: nil)
        }
        guard first != nil else { throw .retriable(reason: "empty body", retryAfter: nil) }
        guard let json = JSONValue.parse(Data(body)), case .object = json else {
            throw .retriable(reason: clean("malformed JSON: \(ServerText.snippet(body))"), retryAfter: nil)
        }
        if let error = json["error"], error != .null {
            throw .retriable(reason: clean("error in a 2xx answer: \(ServerText.snippet(body))"), retryAfter: nil)
        }
        guard let message = json["choices"]?[0]?["message"] else {
            throw .retriable(reason: clean("unexpected JSON: no choices[0].message: \(ServerText.snippet(body))"), retryAfter: nil)
        }
        switch message["content"] {
        case .string(let content)?:
            return .content(clean(content))
        case .array(let parts)?:
            let text = parts.compactMap { $0["text"]?.string ?? $0.string }.joined()
            return .content(clean(text))
        default:
            let finish = json["choices"]?[0]?["finish_reason"]?.string
            if let refusal = message["refusal"]?.string {
                return .unusable(reason: clean("the model refused: \(ServerText.oneLine(refusal))"), raw: clean(refusal))
            }
            let why = finish.map { " (finish_reason \($0))" } ?? ""
            return .unusable(reason: "no content in the reply\(why)", raw: clean(String(decoding: body, as: UTF8.self)))
        }
    }

    /// A 400 that says the server does not take this `response_format`.
    static func aboutResponseFormat(_ body: String) -> Bool {
        let text = body.lowercased()
        return ["response_format", "response format", "json_schema", "json schema", "json_object", "not supported",
                "unsupported", "structured output"].contains { text.contains($0) }
    }

    private func redact(_ text: String) -> String { ServerText.redact(text, secret: apiKey) }

    private func describe(_ error: any Error) -> String {
        TransportFailure.describe(error, timeout: timeout, url: url, maxBodyBytes: maxBodyBytes)
    }
}
