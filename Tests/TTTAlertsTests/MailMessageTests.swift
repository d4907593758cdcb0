import Foundation
import Testing
@testable import TTTAlerts

private func render(_ message: MailMessage) -> (head: [String], body: String, raw: [UInt8]) {
    let raw = message.rendered()
    let text = String(decoding: raw, as: UTF8.self)
    let split = text.range(of: "\r\n\r\n")!
    return (text[..<split.lowerBound].components(separatedBy: "\r\n"), String(text[split.upperBound...]), raw)
}

/// The header's value with its folding undone (RFC 5322 §2.2.3).
private func header(_ name: String, in head: [String]) -> String? {
    var unfolded: [String] = []
    for line in head {
        if line.hasPrefix(" ") || line.hasPrefix("\t"), !unfolded.isEmpty { unfolded[unfolded.count - 1] += line } else { unfolded.append(line) }
    }
    return unfolded.first { $0.lowercased().hasPrefix(name.lowercased() + ":") }.map { String($0.dropFirst(name.count + 1)).trimmingCharacters(in: .whitespaces) }
}

/// RFC 2047 decoding of B-encoded UTF-8 words (adjacent words joined, as decoders do).
private func decodeWords(_ value: String) -> String {
    let words = value.components(separatedBy: .whitespaces).filter { !$0.isEmpty }
    var bytes: [UInt8] = []
    for word in words {
        #expect(word.hasPrefix("=?UTF-8?B?") && word.hasSuffix("?="), "not an encoded-word: \(word)")
        #expect(word.count <= 75)
        let payload = String(word.dropFirst(10).dropLast(2))
        let chunk = Data(base64Encoded: payload)!
        #expect(String(data: chunk, encoding: .utf8) != nil, "an encoded-word splits a character")
        bytes += chunk
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Quoted-printable decoding (RFC 2045 §6.7).
private func decodeQP(_ text: String) -> String {
    var bytes: [UInt8] = []
    let input = Array(text.utf8)
    var i = 0
    while i < input.count {
        if input[i] == UInt8(ascii: "=") {
            if i + 2 < input.count, input[i + 1] == 13, input[i + 2] == 10 { i += 3; continue }
            bytes.append(UInt8(String(decoding: input[(i + 1)...(i + 2)], as: UTF8.self), radix: 16)!)
            i += 3
        } else {
            bytes.append(input[i]); i += 1
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

@Suite struct MailMessageTests {
    let date = Date(timeIntervalSince1970: 1_772_000_000)   // Wed, 25 Feb 2026 06:13:20 +0000

    @Test func rendersTheHeadersInOrderWithCRLF() {
        let message = MailMessage(from: "tttd <alerts@tttd.example>", to: ["a@example.bf", "b@example.bf"],
                                  subject: "Alert for @user", body: "Hello\nworld", date: date, messageID: "d-1@tttd.example")
        let (head, body, raw) = render(message)
        #expect(head == [
            "Date: Wed, 25 Feb 2026 06:13:20 +0000",
            "From: \"tttd\" <alerts@tttd.example>",
            "To: a@example.bf, b@example.bf",
            "Subject: Alert for @user",
            "Message-ID: <d-1@tttd.example>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 7bit",
            "Auto-Submitted: auto-generated",
        ])
        #expect(body == "Hello\r\nworld\r\n")
        // Every line ends with CRLF: no bare LF or CR anywhere.
        for (index, byte) in raw.enumerated() where byte == 10 { #expect(index > 0 && raw[index - 1] == 13) }
        for (index, byte) in raw.enumerated() where byte == 13 { #expect(index + 1 < raw.count && raw[index + 1] == 10) }
    }

    @Test func encodesANonASCIISubjectAndDisplayNameAsRFC2047() {
        let subject = "Alerte n° 42 : appel à la violence chez @koro_bf — « Débat très animé sur l'actualité du Faso » ⚡️"
        let message = MailMessage(from: "Modération tttd <alertes@tttd.example>", to: ["Équipe <equipe@example.bf>"],
                                  subject: subject, body: "x", date: date, messageID: "<m@x>")
        let (head, _, _) = render(message)
        for line in head { #expect(line.utf8.count <= 78, "long header line: \(line)") }
        #expect(head.allSatisfy { $0.utf8.allSatisfy { $0 < 128 } })
        #expect(decodeWords(header("Subject", in: head)!) == subject)
        let from = header("From", in: head)!
        #expect(from.hasSuffix(" <alertes@tttd.example>"))
        #expect(decodeWords(String(from.dropLast(" <alertes@tttd.example>".count))) == "Modération tttd")
        #expect(header("To", in: head)!.hasSuffix("<equipe@example.bf>"))
    }

    @Test func foldsALongASCIISubjectAtSpaces() {
        let subject = Array(repeating: "word", count: 40).joined(separator: " ")
        let (head, _, _) = render(MailMessage(from: "a@b.c", to: ["d@e.f"], subject: subject, body: "", date: date, messageID: "x@y"))
        let lines = head.drop { !$0.hasPrefix("Subject:") }.prefix { $0.hasPrefix("Subject:") || $0.hasPrefix(" ") }
        #expect(lines.count > 1)
        #expect(lines.allSatisfy { $0.utf8.count <= 78 })
        #expect(header("Subject", in: head) == subject)
    }

    @Test func keepsLineBreaksAndControlsOutOfHeaders() {
        let message = MailMessage(from: "a@b.c", to: ["d@e.f"], subject: "Live\r\nBcc: victim@example.org\nX-Evil: 1",
                                  body: "", date: date, messageID: "x@y")
        let (head, _, _) = render(message)
        #expect(!head.contains { $0.hasPrefix("Bcc:") || $0.hasPrefix("X-Evil:") })
        #expect(header("Subject", in: head)?.contains("Bcc: victim@example.org") == true)   // harmless text, one header
    }

    @Test func usesQuotedPrintableForAccentsAndLongLines() {
        let long = String(repeating: "é", count: 700) + " fin"          // 1,404 octets on one line
        let body = "Bonjour à tous\n.point en tête\n\(long)\nligne finale avec espace \n"
        let (head, encoded, _) = render(MailMessage(from: "a@b.c", to: ["d@e.f"], subject: "s", body: body, date: date, messageID: "x@y"))
        #expect(header("Content-Transfer-Encoding", in: head) == "quoted-printable")
        let lines = encoded.components(separatedBy: "\r\n")
        #expect(lines.allSatisfy { $0.utf8.count <= 76 })
        #expect(decodeQP(encoded) == body.replacingOccurrences(of: "\n", with: "\r\n"))
    }

    @Test func keepsShortASCIIBodiesIn7bitAndNormalisesLineEnds() {
        let (head, encoded, _) = render(MailMessage(from: "a@b.c", to: ["d@e.f"], subject: "s",
                                                    body: "one\r\ntwo\rthree\nfour\u{0}\u{7}", date: date, messageID: "x@y"))
        #expect(header("Content-Transfer-Encoding", in: head) == "7bit")
        #expect(encoded == "one\r\ntwo\r\nthree\r\nfour\r\n")
    }

    @Test func longASCIILinesAreNotSentAs7bit() {
        let body = String(repeating: "a", count: 1200)
        let (head, encoded, _) = render(MailMessage(from: "a@b.c", to: ["d@e.f"], subject: "s", body: body, date: date, messageID: "x@y"))
        #expect(header("Content-Transfer-Encoding", in: head) == "quoted-printable")
        #expect(encoded.components(separatedBy: "\r\n").allSatisfy { $0.utf8.count <= 76 })
        #expect(decodeQP(encoded) == body + "\r\n")
    }

    @Test func normalisesMessageIDsAndAddresses() {
        #expect(MailMessage.normalisedMessageID("abc") == "<abc@tttd>")
        #expect(MailMessage.normalisedMessageID("<abc@host>") == "<abc@host>")
        #expect(MailMessage.normalisedMessageID("a b<c>@h") == "<abc@h>")
        #expect(MailMessage.addressSpec("\"Team, FR\" <team@example.bf>") == "team@example.bf")
        #expect(MailMessage.addressSpec(" team@example.bf ") == "team@example.bf")
        #expect(MailMessage.headerAddress("\"Team, \\\"FR\\\"\" <team@example.bf>") == "\"Team, \\\"FR\\\"\" <team@example.bf>")
    }
}
