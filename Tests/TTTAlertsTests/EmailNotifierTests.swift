import Foundation
import Logging
import Testing
@testable import TTTAlerts

private let password = "Pa55-w0rd!secret"

private var quietLogger: Logger {
    var logger = Logger(label: "tttd-email-test")
    logger.logLevel = .critical
    return logger
}

private func eventBytes(_ event: [String: Any]) -> [UInt8] {
    Array(try! JSONSerialization.data(withJSONObject: event))
}

/// The error a delivery throws (nil when delivered); the password is never in it.
private func attempt(_ notifier: EmailNotifier, _ event: [String: Any] = alertEvent(), id: String = "dlv-42-email") async -> DeliveryError? {
    do {
        try await notifier.deliver(event: eventBytes(event), type: "alert", deliveryID: id)
        return nil
    } catch {
        #expect(!error.description.contains(password), "the password leaked: \(error)")
        return error
    }
}

private func notifier(_ url: String, from: String = "Modération tttd <alertes@tttd.example>",
                      to: [String] = ["moderateur@example.bf", "Équipe Ouaga <equipe@example.bf>"],
                      password: String? = nil) -> EmailNotifier {
    EmailNotifier(smtpURL: url, from: from, to: to, password: password, logger: quietLogger)
}

@Suite struct EmailNotifierTests {
    @Test func deliversAFrenchMIMEMessage() async throws {
        try await withSink { sink in
            let email = notifier("smtp://127.0.0.1:\(sink.port)?tls=none")
            #expect(email.channel == "email")
            #expect(await attempt(email) == nil)
            let messages = try sink.messages()
            try #require(messages.count == 1, "\(sink.log)")
            let message = messages[0]
            #expect(message["mail_from"] as? String == "alertes@tttd.example")
            #expect(message["rcpt_tos"] as? [String] == ["moderateur@example.bf", "equipe@example.bf"])
            // Decoded by Python's email package: RFC 2047 subject and names, quoted-printable UTF-8 body.
            #expect(message["subject"] as? String == "[tttd] Alerte n° 42 : appel à la violence chez @koro_bf, risque 0,92")
            #expect(message["from"] as? String == "Modération tttd <alertes@tttd.example>")
            #expect(message["to"] as? String == "moderateur@example.bf, Équipe Ouaga <equipe@example.bf>")
            #expect(message["message_id"] as? String == "<dlv-42-email@tttd.example>")
            #expect(message["content_type"] as? String == "text/plain")
            #expect(message["charset"] as? String == "utf-8")
            #expect(message["defects"] as? [String] == [])
            #expect((message["max_line_octets"] as? Int ?? 999) <= 998)
            #expect(message["bare_lf"] as? Bool == false && message["bare_cr"] as? Bool == false)
            #expect(message["tls"] as? Bool == false)
            let body = try #require(message["body"] as? String).replacingOccurrences(of: "\r\n", with: "\n")
            #expect(body == AlertEmail.body(for: alertEvent()))
            for words in ["@koro_bf", "Débat sur l'actualité du Faso", "Risque", "0,92", "appel à la violence", "ethnie",
                          "« il faut chasser ces gens »", "tttctl alerts ack 42"] {
                #expect(body.contains(words), "missing \(words)")
            }
            let headers = try #require(message["headers"] as? [[String]]).map { $0[0] }
            #expect(headers == ["Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type",
                                "Content-Transfer-Encoding", "Auto-Submitted"])
        }
    }

    /// Lines that start with a dot, and a line that is only a dot (the end of DATA unless
    /// stuffed), arrive intact: libcurl dot-stuffs, the server unstuffs.
    @Test func linesStartingWithADotSurviveTheWire() async throws {
        try await withSink { sink in
            let email = notifier("smtp://127.0.0.1:\(sink.port)?tls=none")
            let body = ".hidden start\n.\n..two dots\nend\n"
            let message = MailMessage(from: "alertes@tttd.example", to: ["m@example.bf"], subject: "dots", body: body, messageID: "dots@tttd")
            try await email.send(message)
            let received = try #require(try sink.messages().first)
            #expect((received["body"] as? String)?.replacingOccurrences(of: "\r\n", with: "\n") == body)
            #expect(try sink.raw(1) == Data(message.rendered()))   // the bytes, exactly
        }
    }

    @Test func longLinesAndAccentsAreEncoded() async throws {
        try await withSink { sink in
            let email = notifier("smtp://127.0.0.1:\(sink.port)?tls=none")
            let justification = String(repeating: "Propos déshumanisants répétés envers une communauté. ", count: 30)
            #expect(await attempt(email, alertEvent(["justification": justification])) == nil)
            let received = try #require(try sink.messages().first)
            #expect((received["max_line_octets"] as? Int ?? 999) <= 78)
            #expect(received["transfer_encoding"] as? String == "quoted-printable")
            #expect((received["body"] as? String)?.contains(String(justification.prefix(500))) == true)
        }
    }

    @Test func aTemporaryRefusalIsRetriableThenTheRetrySucceeds() async throws {
        try await withSink(["--fail-first", "1", "--fail-code", "451"]) { sink in
            let email = notifier("smtp://127.0.0.1:\(sink.port)?tls=none")
            let first = await attempt(email)
            guard case .retriable(let reason, _)? = first else { Issue.record("expected retriable, got \(String(describing: first))"); return }
            #expect(reason.contains("451"), "\(reason)")
            #expect(reason.contains("try again later"), "the server's reply: \(reason)")
            #expect(try sink.messages().isEmpty)
            #expect(await attempt(email) == nil)
            let messages = try sink.messages()
            #expect(messages.count == 1)
            #expect(messages.first?["message_id"] as? String == "<dlv-42-email@tttd.example>")
        }
    }

    @Test(arguments: [(451, "data", true), (452, "rcpt", true), (421, "mail", true),
                      (550, "data", false), (554, "mail", false), (550, "rcpt", false)])
    func smtpRepliesAreClassified(code: Int, stage: String, retriable: Bool) async throws {
        try await withSink(["--fail-first", "1", "--fail-code", "\(code)", "--fail-at", stage]) { sink in
            let email = notifier("smtp://127.0.0.1:\(sink.port)?tls=none", to: ["moderateur@example.bf"])
            let error = try #require(await attempt(email), "\(sink.log)")
            #expect(error.isRetriable == retriable, "\(code) at \(stage): \(error)")
            #expect(error.reason.contains("SMTP \(code)"), "\(error)")
            #expect(try sink.messages().isEmpty)
        }
    }

    @Test func startTLSIsRequiredByDefault() async throws {
        try await withSink { sink in   // a server without STARTTLS
            let email = notifier("smtp://127.0.0.1:\(sink.port)")
            let error = try #require(await attempt(email))
            #expect(error.reason.contains("STARTTLS"), "\(error)")
            #expect(try sink.messages().isEmpty, "sent in plaintext")
            // The operator can say plaintext is fine when STARTTLS is missing.
            #expect(await attempt(notifier("smtp://127.0.0.1:\(sink.port)?starttls=optional")) == nil)
            #expect(try sink.messages().count == 1)
        }
    }

    @Test func startTLSWithAuthentication() async throws {
        try await withSink(["--tls", "starttls", "--auth-user", "alertes@tttd.example"],
                           environment: ["SMTP_SINK_PASSWORD": password]) { sink in
            let caFile = try #require(sink.caFile)
            let url = "smtp://alertes%40tttd.example@127.0.0.1:\(sink.port)?cafile=\(caFile)"
            #expect(await attempt(notifier(url, password: password)) == nil)
            let message = try #require(try sink.messages().first, "\(sink.log)")
            #expect(message["tls"] as? Bool == true)
            #expect(message["auth_user"] as? String == "alertes@tttd.example")

            // A wrong password: 535, permanent, and neither password in the reason.
            let error = try #require(await attempt(notifier(url, password: "wrong-\(password)")))
            #expect(!error.isRetriable, "\(error)")
            #expect(error.reason.contains("535"), "\(error)")
            #expect(!error.reason.contains("wrong-"))

            // The self-signed certificate is not trusted without cafile: no delivery, retriable.
            let untrusted = try #require(await attempt(notifier("smtp://alertes%40tttd.example@127.0.0.1:\(sink.port)", password: password)))
            #expect(untrusted.isRetriable, "\(untrusted)")
            #expect(try sink.messages().count == 1)
        }
    }

    @Test func implicitTLS() async throws {
        try await withSink(["--tls", "implicit"]) { sink in
            let caFile = try #require(sink.caFile)
            #expect(await attempt(notifier("smtps://127.0.0.1:\(sink.port)?cafile=\(caFile)")) == nil)
            #expect(try sink.messages().first?["tls"] as? Bool == true)
        }
    }

    @Test func oneRefusedRecipientDoesNotStopTheOthers() async throws {
        try await withSink(["--reject-rcpt", "parti@example.bf"]) { sink in
            let email = notifier("smtp://127.0.0.1:\(sink.port)?tls=none", to: ["parti@example.bf", "moderateur@example.bf"])
            #expect(await attempt(email) == nil)
            #expect(try sink.messages().first?["rcpt_tos"] as? [String] == ["moderateur@example.bf"])
            // Everyone refused: permanent.
            let nobody = notifier("smtp://127.0.0.1:\(sink.port)?tls=none", to: ["parti@example.bf"])
            let error = try #require(await attempt(nobody))
            #expect(!error.isRetriable && error.reason.contains("550"), "\(error)")
        }
    }

    @Test func anUnreachableServerIsRetriable() async throws {
        let error = try #require(await attempt(notifier("smtp://127.0.0.1:1?tls=none")))
        #expect(error.isRetriable, "\(error)")
        #expect(error.reason.contains("127.0.0.1"))
    }

    @Test func misconfigurationIsPermanent() async throws {
        for url in ["http://127.0.0.1:25", "smtp://127.0.0.1:25?tls=nope", "smtps://127.0.0.1:465?tls=none", "smtp://?tls=none"] {
            let error = try #require(await attempt(notifier(url)))
            #expect(!error.isRetriable, "\(url): \(error)")
            #expect(throws: SMTPSettings.InvalidURL.self) { try EmailNotifier.validate(smtpURL: url) }
        }
        let noRecipient = try #require(await attempt(notifier("smtp://127.0.0.1:1?tls=none", to: [])))
        #expect(!noRecipient.isRetriable)
        let badSender = try #require(await attempt(notifier("smtp://127.0.0.1:1?tls=none", from: "not an address")))
        #expect(!badSender.isRetriable)
        var notJSON: DeliveryError?
        do throws(DeliveryError) {
            try await notifier("smtp://127.0.0.1:1?tls=none").deliver(event: Array("[1]".utf8), type: "alert", deliveryID: "x")
        } catch {
            notJSON = error
        }
        #expect(notJSON?.isRetriable == false)
    }

    @Test func theURLIsReadWithoutCredentialsReachingCurl() throws {
        let settings = try SMTPSettings(url: "smtp://alertes%40tttd.example:\(password)@mail.example.bf:587/tttd.example?starttls=optional&cafile=/etc/ssl/ca.pem")
        #expect(settings.curlURL == "smtp://mail.example.bf:587/tttd.example")
        #expect(settings.username == "alertes@tttd.example")
        #expect(settings.urlPassword == password)
        #expect(settings.security == .startTLSOptional)
        #expect(settings.caFile == "/etc/ssl/ca.pem")
        #expect(try SMTPSettings(url: "smtp://mail.example.bf").security == .startTLSRequired)
        #expect(try SMTPSettings(url: "smtp://mail.example.bf?tls=none").security == .none)
        #expect(try SMTPSettings(url: "SMTPS://mail.example.bf").security == .implicitTLS)
        #expect(try SMTPSettings(url: "smtps://mail.example.bf").curlURL == "smtps://mail.example.bf")
    }
}
