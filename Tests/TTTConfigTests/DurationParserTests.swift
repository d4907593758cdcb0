import Testing
@testable import TTTConfig

@Suite struct DurationParserTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("2m", .seconds(120)),
        ("1h", .seconds(3_600)), ("90d", .seconds(90 * 86_400)), ("1h30m", .seconds(5_400)),
        ("1m30s500ms", .milliseconds(90_500)), ("0s", .zero), (" 15s ", .seconds(15)),
    ])
    func parses(text: String, expected: Duration) {
        #expect(DurationParser.parse(text) == expected)
    }

    @Test(arguments: ["", "3 parsecs", "30", "s", "1.5h", "-1s", "30m1h", "1h1h", "5w", "10 s", "99999999999999999d"])
    func refuses(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    @Test func formatsWhatItParses() {
        for text in ["500ms", "30s", "2m", "1h", "90d", "1h30m", "1d2h3m4s5ms"] {
            let duration = DurationParser.parse(text)
            #expect(duration.map(DurationParser.format) == text)
        }
        #expect(DurationParser.format(.seconds(60)) == "1m")
        #expect(DurationParser.format(.zero) == "0s")
    }
}
