import Foundation

/// An RFC 5322 / MIME e-mail: one `text/plain; charset=utf-8` part.
///
/// `rendered()` produces the bytes handed to the SMTP server: CRLF line ends everywhere, no line
/// over 998 octets, headers Date, From, To, Subject, Message-ID, MIME-Version, Content-Type,
/// Content-Transfer-Encoding and `Auto-Submitted: auto-generated` (RFC 3834: vacation responders
/// must not answer). A Subject or display name that is not plain printable ASCII is sent as
/// RFC 2047 encoded-words (`=?UTF-8?B?…?=`, each at most 75 characters, whole characters only),
/// folded onto continuation lines. Control characters (CR and LF included) never reach a header:
/// text from a live (titles, usernames, transcripts) cannot add headers. The body is `7bit` when
/// it is ASCII with short lines, else quoted-printable (safe for any server, with or without
/// 8BITMIME). Dot-stuffing (a line that starts with "." on the wire) is libcurl's job: its SMTP
/// upload escapes "\r\n." as "\r\n..", and the message never starts with a dot (it starts with
/// "Date:"); the tests send lines that start with dots through a real server.
public struct MailMessage: Sendable {
    public var from: String
    public var to: [String]
    public var subject: String
    public var body: String
    public var date: Date
    public var messageID: String

    public init(from: String, to: [String], subject: String, body: String, date: Date = Date(), messageID: String) {
        self.from = from
        self.to = to
        self.subject = subject
        self.body = body
        self.date = date
        self.messageID = messageID
    }

    /// The message's bytes, ready for SMTP's DATA (before dot-stuffing).
    public func rendered() -> [UInt8] {
        var head = ""
        head += "Date: \(Self.rfc5322Date(date))\r\n"
        head += Self.addressHeader("From", [from])
        head += Self.addressHeader("To", to)
        head += Self.unstructuredHeader("Subject", subject)
        head += "Message-ID: \(Self.normalisedMessageID(messageID))\r\n"
        head += "MIME-Version: 1.0\r\n"
        head += "Content-Type: text/plain; charset=utf-8\r\n"
        let (encoding, encodedBody) = Self.encodeBody(body)
        head += "Content-Transfer-Encoding: \(encoding)\r\n"
        head += "Auto-Submitted: auto-generated\r\n"
        head += "\r\n"
        return Array(head.utf8) + encodedBody
    }

    // MARK: - Addresses

    /// The bare address of `"Name" <user@host>`, `Name <user@host>` or `user@host` (what SMTP's
    /// MAIL FROM and RCPT TO carry).
    public static func addressSpec(_ address: String) -> String {
        let cleaned = stripControls(address)
        if let open = cleaned.lastIndex(of: "<"), let close = cleaned[open...].firstIndex(of: ">") {
            return String(cleaned[cleaned.index(after: open)..<close]).trimmingCharacters(in: .whitespaces)
        }
        return cleaned.trimmingCharacters(in: .whitespaces)
    }

    /// The display name of `Name <user@host>` (quotes removed), nil when there is none.
    static func displayName(_ address: String) -> String? {
        let cleaned = stripControls(address)
        guard let open = cleaned.lastIndex(of: "<") else { return nil }
        var name = cleaned[..<open].trimmingCharacters(in: .whitespaces)
        if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
            name = String(name.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
                .replacingOccurrences(of: "\\\\", with: "\\")
        }
        return name.isEmpty ? nil : name
    }

    /// One address as a header writes it: `user@host`, `"Name" <user@host>` or `=?UTF-8?B?…?= <user@host>`.
    static func headerAddress(_ address: String) -> String {
        headerAddressTokens(address).joined(separator: " ")
    }

    /// The pieces of an address that a header may fold between (display-name words, `<spec>`).
    static func headerAddressTokens(_ address: String) -> [String] {
        let spec = addressSpec(address).filter { $0 != "<" && $0 != ">" && $0 != "," && !$0.isWhitespace }
        guard let name = displayName(address) else { return [spec] }
        if isPlainASCII(name) && !name.contains("=?") {
            let quoted = name.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            return ["\"\(quoted)\"", "<\(spec)>"]
        }
        return encodedWords(name) + ["<\(spec)>"]
    }

    /// `Name: a, b, …`, folded between words so that lines stay within 78 characters where they can.
    static func addressHeader(_ name: String, _ addresses: [String]) -> String {
        var tokens: [String] = []
        for (index, address) in addresses.enumerated() {
            var pieces = headerAddressTokens(address)
            if index < addresses.count - 1 { pieces[pieces.count - 1] += "," }
            tokens += pieces
        }
        return fold("\(name):", tokens)
    }

    /// `start` then each token after a space, a line break before the space where the line
    /// would pass 78 characters (unfolding removes only the CRLF).
    static func fold(_ start: String, _ tokens: [String]) -> String {
        var lines: [String] = []
        var line = start
        for token in tokens {
            if line.utf8.count + 1 + token.utf8.count > 78 && line.contains(where: { $0 != " " }) && line != start {
                lines.append(line)
                line = ""
            }
            line += " " + token
        }
        lines.append(line)
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    // MARK: - Unstructured headers (Subject)

    /// `Name: value` folded at 78 columns where it can be; RFC 2047 encoded-words when the value is
    /// not printable ASCII (or looks like an encoded-word, or has a word too long to fold).
    static func unstructuredHeader(_ name: String, _ value: String) -> String {
        let text = stripControls(value)
        let words = text.split(separator: " ", omittingEmptySubsequences: false)
        if isPlainASCII(text) && !text.contains("=?") && words.allSatisfy({ $0.utf8.count <= 900 }) {
            return fold("\(name):", words.map(String.init))
        }
        return fold("\(name):", encodedWords(text))
    }

    /// RFC 2047 B-encoded words for `text`: each at most 75 characters and holding whole UTF-8
    /// characters (a decoder joins adjacent encoded-words without the whitespace between them).
    static func encodedWords(_ text: String) -> [String] {
        let maxBytes = 39   // base64: 52 characters; + "=?UTF-8?B?" + "?=" = 64 ≤ 75, and "Subject: " + 64 ≤ 78
        var words: [String] = []
        var chunk: [UInt8] = []
        for scalar in text.unicodeScalars {
            let bytes = Array(String(scalar).utf8)
            if chunk.count + bytes.count > maxBytes {
                words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=")
                chunk = []
            }
            chunk += bytes
        }
        if !chunk.isEmpty || words.isEmpty { words.append("=?UTF-8?B?\(Data(chunk).base64EncodedString())?=") }
        return words
    }

    // MARK: - Body

    /// The body with CRLF line ends (bare CR and LF become CRLF, other control characters but TAB
    /// are dropped), ending with CRLF; "7bit" when ASCII with lines ≤ 998 octets, else quoted-printable.
    static func encodeBody(_ body: String) -> (encoding: String, bytes: [UInt8]) {
        let normalised = body.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        var lines = normalised.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            String(String.UnicodeScalarView(line.unicodeScalars.filter {
                $0 == "\t" || $0.properties.generalCategory != .control
            }))
        }
        if lines.last == "" { lines.removeLast() }
        if lines.allSatisfy({ isASCII($0) && $0.utf8.count <= 998 }) {
            return ("7bit", Array(lines.map { $0 + "\r\n" }.joined().utf8))
        }
        var out: [UInt8] = []
        for line in lines { out += quotedPrintable(Array(line.utf8)) }
        return ("quoted-printable", out)
    }

    /// One line in quoted-printable (RFC 2045 §6.7): encoded lines of at most 76 characters with
    /// soft breaks, `=XX` never split, trailing space or tab encoded; ends with CRLF.
    static func quotedPrintable(_ line: [UInt8]) -> [UInt8] {
        let hex = Array("0123456789ABCDEF".utf8)
        var out: [UInt8] = []
        var column = 0
        for (index, byte) in line.enumerated() {
            let last = index == line.count - 1
            var token: [UInt8]
            if (byte >= 33 && byte <= 126 && byte != UInt8(ascii: "=")) || ((byte == 32 || byte == 9) && !last) {
                token = [byte]
            } else {
                token = [UInt8(ascii: "="), hex[Int(byte >> 4)], hex[Int(byte & 15)]]
            }
            // Room for the token, and for a soft break "=" after it unless it ends the line.
            let limit = last ? 76 : 75
            if column + token.count > limit {
                out += Array("=\r\n".utf8)
                column = 0
            }
            out += token
            column += token.count
        }
        out += Array("\r\n".utf8)
        return out
    }

    // MARK: - Other headers

    static func rfc5322Date(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        return formatter.string(from: date)
    }

    /// `<id@domain>`: angle brackets added, characters a msg-id cannot hold dropped, `@tttd` added
    /// when there is no domain.
    static func normalisedMessageID(_ id: String) -> String {
        var core = id.trimmingCharacters(in: .whitespaces)
        if core.hasPrefix("<") { core.removeFirst() }
        if core.hasSuffix(">") { core.removeLast() }
        core = String(core.unicodeScalars.filter {
            $0.value > 32 && $0.value < 127 && !"<>()[]\\,;:\"".unicodeScalars.contains($0)
        }.map(Character.init))
        if core.isEmpty { core = UUID().uuidString.lowercased() }
        if !core.contains("@") { core += "@tttd" }
        return "<\(core)>"
    }

    static func stripControls(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map {
            $0.properties.generalCategory == .control || $0 == "\u{2028}" || $0 == "\u{2029}" ? " " : $0
        }))
    }

    static func isASCII(_ text: String) -> Bool { text.utf8.allSatisfy { $0 < 128 } }
    static func isPlainASCII(_ text: String) -> Bool { text.utf8.allSatisfy { $0 >= 32 && $0 < 127 } }
}
