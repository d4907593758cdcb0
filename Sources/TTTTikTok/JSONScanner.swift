import Foundation

/// One pass over a JSON document that checks its syntax in full (RFC 8259) and keeps only the
/// fields a parser asks for. For the answers read on every check: decoding the lookup answer
/// with `JSONDecoder` took 12 % of tttd's CPU per check (perf, 1,000 accounts), mostly in
/// Codable's containers rather than in the syntax.
///
/// A parser calls one reading method per value; a field it does not want is `skip`ped, which
/// still checks it. A wrong type where a parser expects one fails the whole document, as a
/// `Decodable` type would.
struct JSONScanner {
    struct Malformed: Error {}

    /// An object's key, compared without decoding unless it holds escapes.
    struct Key {
        fileprivate let raw: UnsafeRawBufferPointer
        fileprivate let decoded: String?

        static func == (key: Key, name: StaticString) -> Bool {
            if let decoded = key.decoded { return decoded == name.description }
            guard key.raw.count == name.utf8CodeUnitCount else { return false }
            return key.raw.count == 0 || memcmp(key.raw.baseAddress!, name.utf8Start, key.raw.count) == 0
        }

        static func ~= (name: StaticString, key: Key) -> Bool { key == name }
    }

    private let bytes: UnsafeRawBufferPointer
    private var position = 0
    private var depth = 0
    /// Deeper nesting is refused rather than followed: a hostile answer must not exhaust the stack.
    static let maxDepth = 256

    private init(_ bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
    }

    /// Reads the document in `data` with `body`, which must consume exactly its one top-level value.
    static func scan<T>(_ data: Data, _ body: (inout JSONScanner) throws -> T) throws -> T {
        try data.withUnsafeBytes { buffer in
            var scanner = JSONScanner(buffer)
            scanner.skipWhitespace()
            let value = try body(&scanner)
            scanner.skipWhitespace()
            guard scanner.position == buffer.count else { throw Malformed() }
            return value
        }
    }

    // MARK: Reading values

    /// Calls `field` for each member of an object; `field` must consume the member's value.
    mutating func object(_ field: (inout JSONScanner, Key) throws -> Void) throws {
        try elements(open: UInt8(ascii: "{"), close: UInt8(ascii: "}")) { json in
            let key = try json.readKey()
            json.skipWhitespace()
            try json.expect(UInt8(ascii: ":"))
            json.skipWhitespace()
            try field(&json, key)
        }
    }

    /// An object, or null (false).
    mutating func nullableObject(_ field: (inout JSONScanner, Key) throws -> Void) throws -> Bool {
        if try takeNull() { return false }
        try object(field)
        return true
    }

    /// Calls `element` for each element of an array, or not at all for null (false); `element` must consume it.
    mutating func nullableArray(_ element: (inout JSONScanner) throws -> Void) throws -> Bool {
        if try takeNull() { return false }
        try elements(open: UInt8(ascii: "["), close: UInt8(ascii: "]"), element)
        return true
    }

    /// The comma-separated entries between `open` and `close`, each read by `entry`.
    private mutating func elements(open: UInt8, close: UInt8, _ entry: (inout JSONScanner) throws -> Void) throws {
        try expect(open)
        depth += 1
        guard depth <= Self.maxDepth else { throw Malformed() }
        defer { depth -= 1 }
        skipWhitespace()
        if try peek() == close {
            position += 1
            return
        }
        while true {
            skipWhitespace()
            try entry(&self)
            skipWhitespace()
            switch try next() {
            case UInt8(ascii: ","): continue
            case close: return
            default: throw Malformed()
            }
        }
    }

    /// A string, or nil for null.
    mutating func string() throws -> String? {
        if try takeNull() { return nil }
        guard try peek() == UInt8(ascii: "\"") else { throw Malformed() }
        let (range, escaped) = try stringBody()
        return escaped ? try Self.unescape(UnsafeRawBufferPointer(rebasing: bytes[range]))
                       : String(decoding: UnsafeRawBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }

    /// An integer that fits an `Int`, or nil for null; a fraction or an exponent is refused.
    mutating func int() throws -> Int? {
        if try takeNull() { return nil }
        let start = position
        try skipNumber()
        let text = UnsafeRawBufferPointer(rebasing: bytes[start..<position])
        var value = 0
        var negative = false
        for byte in text {
            switch byte {
            case UInt8(ascii: "-"): negative = true
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let digit = Int(byte - UInt8(ascii: "0"))
                let (shifted, overflowA) = value.multipliedReportingOverflow(by: 10)
                let (added, overflowB) = negative ? shifted.subtractingReportingOverflow(digit) : shifted.addingReportingOverflow(digit)
                guard !overflowA, !overflowB else { throw Malformed() }
                value = added
            default: throw Malformed()
            }
        }
        return value
    }

    mutating func bool() throws -> Bool {
        if try takeLiteral("true") { return true }
        if try takeLiteral("false") { return false }
        throw Malformed()
    }

    /// Steps over any value, checking its syntax.
    mutating func skip() throws {
        switch try peek() {
        case UInt8(ascii: "{"): try object { scanner, _ in try scanner.skip() }
        case UInt8(ascii: "["): _ = try nullableArray { try $0.skip() }
        case UInt8(ascii: "\""): _ = try stringBody()
        case UInt8(ascii: "t"), UInt8(ascii: "f"): _ = try bool()
        case UInt8(ascii: "n"): guard try takeNull() else { throw Malformed() }
        default: try skipNumber()
        }
    }

    // MARK: Syntax

    private mutating func skipWhitespace() {
        while position < bytes.count {
            switch bytes[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    private func peek() throws -> UInt8 {
        guard position < bytes.count else { throw Malformed() }
        return bytes[position]
    }

    private mutating func next() throws -> UInt8 {
        let byte = try peek()
        position += 1
        return byte
    }

    private mutating func expect(_ byte: UInt8) throws {
        guard try next() == byte else { throw Malformed() }
    }

    private mutating func takeNull() throws -> Bool {
        try takeLiteral("null")
    }

    private mutating func takeLiteral(_ literal: StaticString) throws -> Bool {
        let count = literal.utf8CodeUnitCount
        guard position + count <= bytes.count,
              memcmp(bytes.baseAddress! + position, literal.utf8Start, count) == 0 else { return false }
        position += count
        return true
    }

    private mutating func readKey() throws -> Key {
        guard try peek() == UInt8(ascii: "\"") else { throw Malformed() }
        let (range, escaped) = try stringBody()
        let raw = UnsafeRawBufferPointer(rebasing: bytes[range])
        return Key(raw: raw, decoded: escaped ? try Self.unescape(raw) : nil)
    }

    /// Steps over a string; returns the range between its quotes and whether it holds escapes.
    private mutating func stringBody() throws -> (Range<Int>, Bool) {
        position += 1
        let start = position
        var escaped = false
        while true {
            let byte = try next()
            switch byte {
            case UInt8(ascii: "\""): return (start..<position - 1, escaped)
            case UInt8(ascii: "\\"):
                escaped = true
                switch try next() {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                     UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    break
                case UInt8(ascii: "u"):
                    for _ in 0..<4 { guard Self.hexValue(try next()) != nil else { throw Malformed() } }
                default: throw Malformed()
                }
            case 0..<0x20: throw Malformed()
            default: break
            }
        }
    }

    private mutating func skipNumber() throws {
        if try peek() == UInt8(ascii: "-") { position += 1 }
        switch try next() {
        case UInt8(ascii: "0"): break
        case UInt8(ascii: "1")...UInt8(ascii: "9"): skipDigits()
        default: throw Malformed()
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: ".") {
            position += 1
            try requireDigits()
        }
        if position < bytes.count, bytes[position] == UInt8(ascii: "e") || bytes[position] == UInt8(ascii: "E") {
            position += 1
            if position < bytes.count, bytes[position] == UInt8(ascii: "+") || bytes[position] == UInt8(ascii: "-") { position += 1 }
            try requireDigits()
        }
    }

    private mutating func requireDigits() throws {
        let start = position
        skipDigits()
        guard position > start else { throw Malformed() }
    }

    private mutating func skipDigits() {
        while position < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[position]) { position += 1 }
    }

    private static func hexValue(_ byte: UInt8) -> UInt16? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt16(byte - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt16(byte - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt16(byte - UInt8(ascii: "A") + 10)
        default: nil
        }
    }

    /// The text of a string whose syntax `stringBody` checked; a lone surrogate becomes U+FFFD.
    private static func unescape(_ raw: UnsafeRawBufferPointer) throws -> String {
        var utf8 = [UInt8]()
        utf8.reserveCapacity(raw.count)
        var utf16 = [UInt16]()
        var index = 0
        // Consecutive \u escapes are UTF-16 (surrogate pairs); decoding repairs a lone surrogate to U+FFFD.
        func flushUTF16() {
            guard !utf16.isEmpty else { return }
            utf8.append(contentsOf: String(decoding: utf16, as: UTF16.self).utf8)
            utf16.removeAll(keepingCapacity: true)
        }
        while index < raw.count {
            let byte = raw[index]
            guard byte == UInt8(ascii: "\\") else {
                flushUTF16()
                utf8.append(byte)
                index += 1
                continue
            }
            let kind = raw[index + 1]
            index += 2
            if kind == UInt8(ascii: "u") {
                var unit: UInt16 = 0
                for offset in 0..<4 { unit = unit << 4 | (hexValue(raw[index + offset]) ?? 0) }
                index += 4
                utf16.append(unit)
                continue
            }
            flushUTF16()
            switch kind {
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            default: utf8.append(kind)  // " \ /
            }
        }
        flushUTF16()
        return String(decoding: utf8, as: UTF8.self)
    }
}
