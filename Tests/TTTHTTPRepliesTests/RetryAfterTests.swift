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

    @Test("RFC 850's two-digit year is the nearest one not more than 50 years ahead")
    func twoDigitYears() {
        // 2076 is 50 years ahead of 2026: still ahead. 2077 would be 51: it is 1977.
        #expect(RetryAfter.parse("Friday, 14-Feb-76 00:00:00 GMT", now: now) == RetryAfter.ceiling)
        #expect(RetryAfter.parse("Monday, 14-Feb-77 00:00:00 GMT", now: now) == .zero)
        #expect(RetryAfter.parse("Thursday, 26-Feb-26 06:13:20 GMT", now: now) == .seconds(86_400))
        // In 2060, 05 is 2105 (45 years ahead), not 2005; 11 is 2011.
        let in2060 = Date(timeIntervalSince1970: 2_840_140_800)  // Thu, 01 Jan 2060 00:00:00 GMT
        #expect(RetryAfter.parse("Thursday, 01-Jan-05 00:00:00 GMT", now: in2060) == RetryAfter.ceiling)
        #expect(RetryAfter.parse("Saturday, 01-Jan-11 00:00:00 GMT", now: in2060) == .zero)
    }

    @Test("a date that does not exist, or not in one of the three formats exactly, is nil", arguments: [
        "Sun, 29 Feb 2026 06:14:20 GMT", "Wed, 31 Apr 2026 06:14:20 GMT", "Wed, 25 Feb 2026 24:00:00 GMT",
        "Wed, 25 Feb 2026 06:60:00 GMT", "Wed, 25 Feb 2026 06:14:20 UTC", "Wed, 25 Feb 2026 06:14:20 GMT x",
        "wed, 25 feb 2026 06:14:20 GMT", "Wed, 25 Feb 26 06:14:20 GMT", "Wed, 5 Feb 2026 06:14:20 GMT",
        "Wed,25 Feb 2026 06:14:20 GMT", "Wednesday, 25 Feb 2026 06:14:20 GMT", "Wed, 25-Feb-26 06:14:20 GMT",
        "Wed Feb 25 06:14:20 26", "Wed Feb 25 6:14:20 2026", "Wed Feb 25 06:14:20 2026 GMT", "Wed, 25 Fe",
    ])
    func notAnHTTPDate(_ value: String) {
        #expect(RetryAfter.parse(value, now: now) == nil)
    }

    @Test("a leap day exists in a leap year only; a leap second is read")
    func calendar() {
        let leapDay = Date(timeIntervalSince1970: 1_709_164_800)  // Thu, 29 Feb 2024 00:00:00 GMT
        #expect(RetryAfter.parse("Thu, 29 Feb 2024 00:01:00 GMT", now: leapDay) == .seconds(60))
        #expect(RetryAfter.parse("Fri, 01 Mar 2024 00:00:00 GMT", now: leapDay) == .seconds(86_400))
        let endOf2016 = Date(timeIntervalSince1970: 1_483_228_799)  // Sat, 31 Dec 2016 23:59:59 GMT
        #expect(RetryAfter.parse("Sat, 31 Dec 2016 23:59:60 GMT", now: endOf2016) == .seconds(1))
        // Centuries are not leap years unless divisible by 400.
        let noon28February2000 = Date(timeIntervalSince1970: 951_739_200)
        #expect(RetryAfter.parse("Tue, 29 Feb 2000 00:00:00 GMT", now: noon28February2000) == .seconds(43_200))
        #expect(RetryAfter.parse("Thu, 29 Feb 1900 00:00:00 GMT", now: noon28February2000) == nil)
        #expect(RetryAfter.parse("Sun, 29 Feb 2100 00:00:00 GMT", now: noon28February2000) == nil)
    }

    @Test("any instant from 1900 to 2199, written by Foundation in each format, reads back as itself")
    func roundTrip() {
        var generator = SystemRandomNumberGenerator()
        let formatters = ["EEE, dd MMM yyyy HH:mm:ss 'GMT'", "EEE MMM dd HH:mm:ss yyyy"].map { format in
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = format
            return formatter
        }
        for _ in 0..<2000 {
            let instant = Date(timeIntervalSince1970: Double(Int64.random(in: -2_208_988_800..<7_258_118_400, using: &generator)))
            // A day before, so the delay is under the ceiling and exact.
            let now = instant.addingTimeInterval(-86_000)
            let imf = formatters[0].string(from: instant)
            var asctime = Array(formatters[1].string(from: instant))
            // asctime pads a one-digit day with a space, not a zero.
            if asctime[8] == "0" { asctime[8] = " " }
            for text in [imf, String(asctime)] {
                #expect(RetryAfter.parse(text, now: now) == .seconds(86_000), "\(text)")
            }
        }
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
