import Foundation

/// One window to judge.
public struct AnalysisRequest: Sendable {
    public var transcript: String
    /// The previous window's text, given to the model as context only (not judged).
    public var context: String?

    public init(transcript: String, context: String?) {
        self.transcript = transcript
        self.context = context
    }
}

/// A verdict and how it was obtained (recorded with each analysis).
public struct AnalysisOutcome: Sendable {
    public var verdict: Verdict
    /// The model's reply as received.
    public var raw: String
    public var model: String
    /// What worked: `.jsonSchema`, `.jsonObject`, `.plain`.
    public var mode: StructuredMode
    /// Requests that got a reply (1 when the first reply validated).
    public var attempts: Int
    public var promptSHA256: String
    /// From the call to the validated reply, retries included.
    public var milliseconds: Int

    public init(verdict: Verdict, raw: String, model: String, mode: StructuredMode, attempts: Int,
                promptSHA256: String, milliseconds: Int) {
        self.verdict = verdict
        self.raw = raw
        self.model = model
        self.mode = mode
        self.attempts = attempts
        self.promptSHA256 = promptSHA256
        self.milliseconds = milliseconds
    }
}

/// How the reply is constrained: a strict JSON schema (constrained decoding), JSON mode, or
/// nothing but the prompt, strongest first.
public enum StructuredMode: String, Sendable, CaseIterable {
    case jsonSchema = "json_schema"
    case jsonObject = "json_object"
    case plain

    /// The next weaker mode, nil after plain.
    public var fallback: StructuredMode? {
        switch self {
        case .jsonSchema: .jsonObject
        case .jsonObject: .plain
        case .plain: nil
        }
    }

    var strength: Int {
        switch self {
        case .jsonSchema: 2
        case .jsonObject: 1
        case .plain: 0
        }
    }
}

public enum AnalysisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Worth retrying later (timeout, connection, 5xx, 429 with Retry-After, an HTML page; 401,
    /// 403, 404 and redirects, which need an admin, after at least 5 minutes): the window waits
    /// in the backlog.
    case retriable(reason: String, retryAfter: Duration?)
    /// The replies never validated after the bounded retries (or the server refused this request,
    /// e.g. a 400 that is not about the response format): recorded as a failed analysis with the
    /// raw reply kept.
    case invalid(reason: String, raw: String, attempts: Int)

    public var reason: String {
        switch self {
        case .retriable(let reason, _), .invalid(let reason, _, _): reason
        }
    }

    public var description: String {
        switch self {
        case .retriable(let reason, nil): "retriable: \(reason)"
        case .retriable(let reason, let after?): "retriable after \(Int(after.components.seconds + (after.components.attoseconds > 0 ? 1 : 0))) s: \(reason)"
        case .invalid(let reason, _, let attempts): "invalid reply after \(attempts) attempt\(attempts == 1 ? "" : "s"): \(reason)"
        }
    }
}

/// An OpenAI-compatible chat endpoint, or a test double.
public protocol Analyzer: Sendable {
    func analyze(_ request: AnalysisRequest) async throws(AnalysisError) -> AnalysisOutcome
}
