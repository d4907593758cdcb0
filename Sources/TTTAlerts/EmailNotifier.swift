import CCurlShim
import Foundation
import Logging
import NIOPosix

/// Where and how e-mail is sent: what `alerts.email.smtp_url` says.
///
///     smtp://[user@]host[:port][/ehlo-domain][?option&…]    STARTTLS, required by default
///     smtps://[user@]host[:port][/ehlo-domain][?cafile=…]   TLS from the first byte (port 465)
///
/// - `smtp://` **requires STARTTLS** (libcurl's CURLUSESSL_ALL): a server that does not offer it,
///   or a STARTTLS that fails, fails the delivery (retried later) — a message is never sent in
///   plaintext because the server, or someone in between, dropped STARTTLS.
///   `?starttls=optional` uses STARTTLS when offered and plaintext otherwise (CURLUSESSL_TRY);
///   `?tls=none` never uses TLS (a relay on localhost, tests). `?starttls=required` is the default.
/// - `smtps://` is implicit TLS; `tls=none` and `starttls=…` are refused there.
/// - `?cafile=/path/ca.pem` verifies the server against that CA bundle instead of the system's
///   (an internal relay with its own CA). Certificates are always verified.
/// - The user is the URL's userinfo (percent-encoded: `alerts%40example.org@smtp.example.org`);
///   the password is the `smtp_password` credential. A password written in the URL is used only
///   when there is no credential (development), with a warning. Neither reaches curl's URL, argv
///   or a log line; the URL given to libcurl has no userinfo and no query.
/// - The path, when present, is the domain sent with EHLO (libcurl's default: this host's name).
/// - Any other query option is an error (a typo must not silently weaken TLS).
public struct SMTPSettings: Sendable, Equatable {
    public enum Security: String, Sendable {
        /// smtp:// + STARTTLS or fail (CURLUSESSL_ALL).
        case startTLSRequired = "STARTTLS required"
        /// smtp:// + STARTTLS when offered (CURLUSESSL_TRY).
        case startTLSOptional = "STARTTLS when offered"
        /// smtp:// in plaintext (CURLUSESSL_NONE).
        case none = "no TLS"
        /// smtps:// (TLS from the start).
        case implicitTLS = "implicit TLS"
    }

    /// The URL given to libcurl: scheme, host, port and path; no userinfo, no query.
    public var curlURL: String
    public var host: String
    public var username: String?
    public var security: Security
    public var caFile: String?
    /// A password written in the URL (development only); never shown.
    var urlPassword: String?

    public struct InvalidURL: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    public init(url: String) throws(InvalidURL) {
        guard var components = URLComponents(string: url.trimmingCharacters(in: .whitespaces)),
              let scheme = components.scheme?.lowercased(), scheme == "smtp" || scheme == "smtps" else {
            throw InvalidURL(description: "alerts.email.smtp_url must be an smtp:// or smtps:// URL")
        }
        guard let host = components.host, !host.isEmpty else {
            throw InvalidURL(description: "alerts.email.smtp_url has no host")
        }
        self.host = host
        username = components.user.flatMap { $0.isEmpty ? nil : $0 }
        urlPassword = components.password.flatMap { $0.isEmpty ? nil : $0 }
        var security: Security = scheme == "smtps" ? .implicitTLS : .startTLSRequired
        var caFile: String?
        for item in components.queryItems ?? [] {
            let value = item.value?.lowercased() ?? ""
            switch (item.name.lowercased(), value) {
            case ("tls", "none") where scheme == "smtp":
                security = .none
            case ("starttls", "optional") where scheme == "smtp":
                security = .startTLSOptional
            case ("starttls", "required") where scheme == "smtp":
                security = .startTLSRequired
            case ("cafile", _) where !(item.value ?? "").isEmpty:
                caFile = item.value
            default:
                throw InvalidURL(description: "alerts.email.smtp_url: unknown or misplaced option \"\(item.name)=\(item.value ?? "")\""
                    + " (smtp:// takes tls=none, starttls=optional or starttls=required; both take cafile=PATH)")
            }
        }
        self.security = security
        self.caFile = caFile
        components.user = nil
        components.password = nil
        components.query = nil
        components.fragment = nil
        components.scheme = scheme
        guard let curlURL = components.string else {
            throw InvalidURL(description: "alerts.email.smtp_url cannot be read")
        }
        self.curlURL = curlURL
    }

    var curlTLS: Int32 {
        switch security {
        case .startTLSRequired, .implicitTLS: Int32(TTT_SMTP_TLS_REQUIRED)
        case .startTLSOptional: Int32(TTT_SMTP_TLS_TRY)
        case .none: Int32(TTT_SMTP_TLS_NONE)
        }
    }
}

/// libcurl's process-wide initialisation, done once (EmailNotifier does it on first use; the
/// daemon may call `Curl.initialize()` early at start, before any other thread uses curl).
public enum Curl {
    private static let initialised: Bool = ttt_curl_global_init() == 0

    /// Loads libcurl and calls curl_global_init, once; false when it failed (`loadError` says why).
    @discardableResult
    public static func initialize() -> Bool { initialised }

    public static var loadError: String { String(cString: ttt_curl_load_error()) }

    public static var version: String { String(cString: ttt_curl_version()) }
}

/// Sends events by e-mail through libcurl's SMTP client (see `SMTPSettings` for the URL).
///
/// Each delivery is one MIME message (`MailMessage`, words from `AlertEmail`) to every address of
/// `to`; its Message-ID is made from the delivery id, so that a retry is recognisably the same
/// message. libcurl blocks: the send runs on a NIOThreadPool (its own two threads by default,
/// never Swift's cooperative pool), 30 s at most (10 s to connect).
///
/// Outcomes: a 4xx SMTP reply (421, 451, 452 …), a connection failure, a timeout or a TLS failure
/// (STARTTLS not offered when required included) is retriable; a 5xx reply (550 …) or a
/// misconfiguration (bad URL, no recipient) is permanent. When the server refuses some recipients
/// but accepts others, the message goes to those it accepts and the refusals are logged as a
/// warning. The reason is curl's error text, the SMTP code and the server's last reply line; it
/// never contains the password.
public struct EmailNotifier: Notifier {
    public var channel: String { "email" }

    private let settings: Result<SMTPSettings, SMTPSettings.InvalidURL>
    private let from: String
    private let to: [String]
    private let password: String?
    private let logger: Logger
    private let threadPool: NIOThreadPool
    private let timeout: Duration
    private let connectTimeout: Duration

    /// The threads curl blocks on, for every EmailNotifier that is given none (started once, never stopped).
    private static let sharedPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 2)
        pool.start()
        return pool
    }()

    public init(smtpURL: String, from: String, to: [String], password: String?, logger: Logger) {
        self.init(smtpURL: smtpURL, from: from, to: to, password: password, logger: logger, threadPool: nil)
    }

    public init(smtpURL: String, from: String, to: [String], password: String?, logger: Logger,
                threadPool: NIOThreadPool?, timeout: Duration = .seconds(30), connectTimeout: Duration = .seconds(10)) {
        Curl.initialize()
        do throws(SMTPSettings.InvalidURL) {
            settings = .success(try SMTPSettings(url: smtpURL))
        } catch {
            settings = .failure(error)
        }
        self.from = from
        self.to = to
        self.logger = logger
        self.threadPool = threadPool ?? Self.sharedPool
        self.timeout = timeout
        self.connectTimeout = connectTimeout
        switch settings {
        case .success(let settings):
            if let password, !password.isEmpty {
                self.password = password
            } else if let urlPassword = settings.urlPassword {
                logger.warning("alerts.email.smtp_url contains a password: use the smtp_password credential instead")
                self.password = urlPassword
            } else {
                self.password = nil
            }
            if self.password != nil && settings.username == nil {
                logger.warning("an SMTP password is set but alerts.email.smtp_url names no user: e-mail is sent without AUTH")
            }
            if settings.security == .none || settings.security == .startTLSOptional {
                logger.notice("e-mail to \(settings.host) may travel in plaintext (\(settings.security.rawValue))")
            }
        case .failure(let error):
            self.password = password
            logger.error("e-mail alerts cannot be sent: \(error)")
        }
    }

    /// Checks an `alerts.email.smtp_url` (for `tttd check-config`).
    public static func validate(smtpURL: String) throws(SMTPSettings.InvalidURL) {
        _ = try SMTPSettings(url: smtpURL)
    }

    public func deliver(event: [UInt8], type: String, deliveryID: String) async throws(DeliveryError) {
        if case .failure(let error) = settings { throw .permanent("e-mail: \(error)") }
        guard var object = (try? JSONSerialization.jsonObject(with: Data(event))) as? [String: Any] else {
            throw .permanent("e-mail: the \(type) event is not a JSON object")
        }
        if object["type"] == nil { object["type"] = type }
        let domain = MailMessage.addressSpec(from).split(separator: "@").last.map(String.init) ?? "tttd"
        let message = MailMessage(from: from, to: to, subject: AlertEmail.subject(for: object),
                                  body: AlertEmail.body(for: object), messageID: "<\(deliveryID)@\(domain)>")
        try await send(message, id: deliveryID)
    }

    /// Sends one message to its `to` addresses from its `from` (a test e-mail, or what `deliver`
    /// composed); the same outcomes as `deliver`. `id` only names the message in log lines.
    public func send(_ message: MailMessage, id: String? = nil) async throws(DeliveryError) {
        let settings: SMTPSettings
        switch self.settings {
        case .success(let value): settings = value
        case .failure(let error): throw .permanent("e-mail: \(error)")
        }
        let sender = MailMessage.addressSpec(message.from)
        let recipients = message.to.map(MailMessage.addressSpec).filter { !$0.isEmpty }
        guard Self.isAddress(sender) else { throw .permanent("e-mail: the sender \"\(snippet(sender, limit: 80))\" is not an address") }
        guard !recipients.isEmpty else { throw .permanent("e-mail: no recipient") }
        if let bad = recipients.first(where: { !Self.isAddress($0) }) {
            throw .permanent("e-mail: the recipient \"\(snippet(bad, limit: 80))\" is not an address")
        }
        let send = SMTPSend(settings: settings, password: password, from: "<\(sender)>",
                            recipients: recipients.map { "<\($0)>" }, message: message.rendered(),
                            timeoutSeconds: max(1, Int(timeout.components.seconds)),
                            connectTimeoutSeconds: max(1, Int(connectTimeout.components.seconds)))
        let outcome: SMTPOutcome
        do {
            outcome = try await threadPool.runIfActive { send.perform() }
        } catch {
            throw .retriable("e-mail: the sending threads are stopped (\(error))", retryAfter: nil)
        }
        if outcome.code == 0 {
            if !outcome.refused.isEmpty {
                logger.warning("e-mail \(id ?? "") was refused for some recipients (the others got it): \(redact(outcome.refused))")
            }
            return
        }
        throw classify(outcome, settings: settings)
    }

    /// `local@domain`, with nothing SMTP's envelope cannot carry (spaces, brackets, controls).
    static func isAddress(_ address: String) -> Bool {
        let parts = address.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count >= 2 && !parts[0].isEmpty && !(parts.last ?? "").isEmpty
            && !address.unicodeScalars.contains { $0.value <= 32 || $0.value == 127 || "<>()[],;:\\\"".unicodeScalars.contains($0) }
    }

    /// A failed send's class and reason (see the type's documentation).
    private func classify(_ outcome: SMTPOutcome, settings: SMTPSettings) -> DeliveryError {
        var reason = "e-mail via \(settings.host): curl error \(outcome.code) (\(String(cString: ttt_curl_strerror(outcome.code))))"
        if !outcome.error.isEmpty { reason += ": \(outcome.error)" }
        if outcome.smtpCode != 0 { reason += "; SMTP \(outcome.smtpCode)" }
        if !outcome.lastReply.isEmpty { reason += "; server said \"\(outcome.lastReply)\"" }
        let kind = ttt_smtp_failure_kind(outcome.code)
        if kind == Int32(TTT_SMTP_FAILURE_STARTTLS) {
            reason += " — STARTTLS is required (add ?starttls=optional or ?tls=none to alerts.email.smtp_url to allow plaintext)"
        }
        reason = redact(reason)
        switch outcome.smtpCode {
        case 400..<500: return .retriable(reason, retryAfter: nil)
        case 500..<600: return .permanent(reason)
        default: break
        }
        if kind == Int32(TTT_SMTP_FAILURE_CONFIGURATION) { return .permanent(reason) }
        // Connection, DNS, timeouts, TLS (a server or a path that may be mended), odd replies.
        return .retriable(reason, retryAfter: nil)
    }

    /// The password never leaves in a reason or a log line, even if a server echoed it.
    private func redact(_ text: String) -> String {
        guard let password, password.count >= 3 else { return text }
        return text.replacingOccurrences(of: password, with: "***")
    }
}

/// What one curl send returned (Sendable copies of ttt_smtp_result).
struct SMTPOutcome: Sendable {
    var code: Int32
    var smtpCode: Int
    var error: String
    var lastReply: String
    var refused: String
}

/// One blocking libcurl SMTP send, with everything it needs copied in.
struct SMTPSend: Sendable {
    var settings: SMTPSettings
    var password: String?
    var from: String
    var recipients: [String]
    var message: [UInt8]
    var timeoutSeconds: Int
    var connectTimeoutSeconds: Int

    func perform() -> SMTPOutcome {
        var result = ttt_smtp_result()
        let cRecipients: [UnsafeMutablePointer<CChar>?] = recipients.map { strdup($0) }
        defer { cRecipients.forEach { free($0) } }
        let code: Int32 = cRecipients.map { UnsafePointer($0) }.withUnsafeBufferPointer { rcpt in
            message.withUnsafeBufferPointer { body in
                ttt_smtp_send(settings.curlURL, settings.username, password, settings.curlTLS, settings.caFile, from,
                              rcpt.baseAddress, rcpt.count, body.baseAddress, body.count,
                              timeoutSeconds, connectTimeoutSeconds, &result)
            }
        }
        return SMTPOutcome(code: code, smtpCode: Int(result.smtp_code), error: Self.text(&result.error),
                           lastReply: Self.text(&result.last_reply), refused: Self.text(&result.refused))
    }

    private static func text<T>(_ tuple: inout T) -> String {
        withUnsafeBytes(of: &tuple) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
}
