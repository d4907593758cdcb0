import Testing
import TTTDomain

@Suite("usernames")
struct UsernameTests {
    @Test("accepted with or without @, stored lower-case", arguments: [
        ("alice", "alice"), ("@Alice", "alice"), ("  @bob.b  ", "bob.b"), ("a_1", "a_1"),
        ("ab", "ab"), (String(repeating: "x", count: 24), String(repeating: "x", count: 24)), ("_.x", "_.x"),
    ])
    func accepted(raw: String, stored: String) throws {
        #expect(try Username(validating: raw).value == stored)
    }

    @Test("rejected with a message that says what is wrong")
    func rejected() {
        #expect(throws: UsernameError.tooShort(raw: "a")) { try Username(validating: "@a") }
        #expect(throws: UsernameError.tooLong(raw: String(repeating: "y", count: 25), length: 25)) {
            try Username(validating: String(repeating: "y", count: 25))
        }
        #expect(throws: UsernameError.endsWithDot(raw: "alice.")) { try Username(validating: "alice.") }
        #expect(throws: UsernameError.empty) { try Username(validating: " @ ") }
        #expect(throws: UsernameError.invalidCharacter(raw: "al-ice", character: "-")) { try Username(validating: "al-ice") }
        #expect(throws: UsernameError.invalidCharacter(raw: "élodie", character: "é")) { try Username(validating: "élodie") }
        #expect(throws: UsernameError.invalidCharacter(raw: "@@x", character: "@")) { try Username(validating: "@@@x") }
        let message = (try? Username(validating: "al ice")).map { _ in "" } ?? UsernameError.invalidCharacter(raw: "al ice", character: " ").description
        #expect(message.contains("a space is not allowed"))
    }

    @Test("labels: short and printable")
    func labels() {
        #expect(Label.validate("ouagadougou") == nil)
        #expect(Label.validate("") != nil)
        #expect(Label.validate("a,b") != nil)
        #expect(Label.validate(String(repeating: "l", count: 65)) != nil)
    }
}
