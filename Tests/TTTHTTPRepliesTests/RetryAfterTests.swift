import Foundation
import Testing
import TTTHTTPReplies

@Suite("Retry-After")
struct RetryAfterTests {
    /// Wed, 25 Feb 2026 06:13:20 GMT.
    let now = Date(timeIntervalSince1970: 1_772_000_000)

    @Test("delay-seconds, a fraction too")
    func seconds() {
        #expect(RetryAfter.parse("7", now: now) == .seconds(7))
        #expect(RetryAfter.parse(" 120 ", now: now) == .seconds(120))
        #expect(RetryAfter.parse("1.5", now: now) == .milliseconds(1500))
        #expect(RetryAfter.parse("0", now: now) == .zero)
    }

    @Test("what is neither a delay nor a date is nil, not zero", arguments: [
        "", "soon", "-5", "+5", "1e3", "inf", "nan", "0x10", "1.2.3", ".", "7 s", "Wed, 31 Feb 2026 06:14:20 GMT",
    ])
    func notADelay(_ value: String) {
        #expect(RetryAfter.parse(value, now: now) == nil)
    }

    @Test("an HTTP date in each of the three formats a recipient must accept")
    func dates() {
        #expect(RetryAfter.parse("Wed, 25 Feb 2026 06:14:20 GMT", now: now) == .seconds(60))
        #expect(RetryAfter.parse("Wednesday, 25-Feb-26 06:14:20 GMT", now: now) == .seconds(60))
        #expect(RetryAfter.parse("Wed Feb 25 06:14:20 2026", now: now) == .seconds(60))
        // asctime pads a one-digit day with a space.
        let lastMinuteOfFebruary = now.addingTimeInterval(323_200 - 60)
        #expect(RetryAfter.parse("Sun Mar  1 00:00:00 2026", now: lastMinuteOfFebruary) == .seconds(60))
        #expect(RetryAfter.parse("Wed, 25 Feb 2026 06:00:00 GMT", now: now) == .zero)
    }

    @Test("a wild value is cut to a day: it neither traps nor parks the work for years")
    func ceiling() {
        #expect(RetryAfter.parse("86401", now: now) == RetryAfter.ceiling)
        #expect(RetryAfter.parse("9223372036854775807", now: now) == RetryAfter.ceiling)
        #expect(RetryAfter.parse(String(repeating: "9", count: 400), now: now) == RetryAfter.ceiling)
        #expect(RetryAfter.parse("Fri, 31 Dec 9999 23:59:59 GMT", now: now) == RetryAfter.ceiling)
        #expect(RetryAfter.ceiling == .seconds(86_400))
    }
}
