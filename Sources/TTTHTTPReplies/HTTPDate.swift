import Foundation

/// An HTTP-date (RFC 9110, section 5.6.7) in any of the three formats a recipient must accept,
/// read by hand: Foundation's `DateFormatter` leaks an object at each parse and reads the formats
/// leniently.
enum HTTPDate {
    /// The date as seconds since 1970-01-01 00:00:00 UTC; nil unless `text` is exactly one of
    /// IMF-fixdate, RFC 850 or asctime with a day that exists. `now` places RFC 850's two-digit year:
    /// one that would be more than 50 years ahead is the last such year in the past.
    static func secondsSince1970(_ text: String, now: Date) -> Int64? {
        let bytes = Array(text.utf8)
        for format in [imfFixdate, rfc850, asctime] {
            var cursor = Cursor(bytes: bytes)
            if let fields = format(&cursor), cursor.atEnd { return fields.seconds(now: now) }
        }
        return nil
    }

    private struct Fields {
        var year: Int
        /// RFC 850's year has two digits; the century comes from `now`.
        var centuryOmitted = false
        var month: Int
        var day: Int
        var hour: Int
        var minute: Int
        var second: Int

        func seconds(now: Date) -> Int64? {
            var year = self.year
            if centuryOmitted {
                let current = HTTPDate.year(ofDay: Int(floor(now.timeIntervalSince1970 / 86_400)))
                // The latest year with these two digits that is at most 50 years ahead.
                year += current - current % 100
                if year > current + 50 { year -= 100 } else if year + 100 <= current + 50 { year += 100 }
            }
            guard (1...12).contains(month), (1...HTTPDate.days(inMonth: month, of: year)).contains(day),
                  hour <= 23, minute <= 59, second <= 60 else { return nil }
            let days = HTTPDate.days(fromYear: year, month: month, day: day)
            return Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second)
        }
    }

    /// `Sun, 06 Nov 1994 08:49:37 GMT`
    private static func imfFixdate(_ cursor: inout Cursor) -> Fields? {
        guard cursor.name(shortDayNames) != nil, cursor.literal(", "),
              let day = cursor.number(digits: 2), cursor.literal(" "),
              let month = cursor.name(monthNames), cursor.literal(" "),
              let year = cursor.number(digits: 4), cursor.literal(" "),
              let time = cursor.timeOfDay(), cursor.literal(" GMT") else { return nil }
        return Fields(year: year, month: month + 1, day: day, hour: time.hour, minute: time.minute, second: time.second)
    }

    /// `Sunday, 06-Nov-94 08:49:37 GMT`
    private static func rfc850(_ cursor: inout Cursor) -> Fields? {
        guard cursor.name(longDayNames) != nil, cursor.literal(", "),
              let day = cursor.number(digits: 2), cursor.literal("-"),
              let month = cursor.name(monthNames), cursor.literal("-"),
              let year = cursor.number(digits: 2), cursor.literal(" "),
              let time = cursor.timeOfDay(), cursor.literal(" GMT") else { return nil }
        return Fields(year: year, centuryOmitted: true, month: month + 1, day: day,
                      hour: time.hour, minute: time.minute, second: time.second)
    }

    /// `Sun Nov  6 08:49:37 1994` (a day of one digit is padded with a space).
    private static func asctime(_ cursor: inout Cursor) -> Fields? {
        guard cursor.name(shortDayNames) != nil, cursor.literal(" "),
              let month = cursor.name(monthNames), cursor.literal(" ") else { return nil }
        let day = cursor.literal(" ") ? cursor.number(digits: 1) : cursor.number(digits: 2)
        guard let day, cursor.literal(" "),
              let time = cursor.timeOfDay(), cursor.literal(" "),
              let year = cursor.number(digits: 4) else { return nil }
        return Fields(year: year, month: month + 1, day: day, hour: time.hour, minute: time.minute, second: time.second)
    }

    // Case-sensitive, as the grammar's %s"…" strings are.
    private static let shortDayNames = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    private static let longDayNames = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private struct Cursor {
        let bytes: [UInt8]
        var index = 0

        var atEnd: Bool { index == bytes.count }

        mutating func literal(_ text: String) -> Bool {
            let expected = Array(text.utf8)
            guard bytes.count - index >= expected.count, bytes[index..<index + expected.count].elementsEqual(expected) else {
                return false
            }
            index += expected.count
            return true
        }

        /// Which of `names` comes next (its index); none of a list is the start of another.
        mutating func name(_ names: [String]) -> Int? {
            for (position, name) in names.enumerated() where literal(name) { return position }
            return nil
        }

        mutating func number(digits: Int) -> Int? {
            guard bytes.count - index >= digits else { return nil }
            var value = 0
            for byte in bytes[index..<index + digits] {
                guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(byte - UInt8(ascii: "0"))
            }
            index += digits
            return value
        }

        mutating func timeOfDay() -> (hour: Int, minute: Int, second: Int)? {
            guard let hour = number(digits: 2), literal(":"), let minute = number(digits: 2), literal(":"),
                  let second = number(digits: 2) else { return nil }
            return (hour, minute, second)
        }
    }

    // MARK: Civil calendar (proleptic Gregorian, days counted from 1970-01-01)

    private static func isLeap(_ year: Int) -> Bool { year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) }

    private static func days(inMonth month: Int, of year: Int) -> Int {
        switch month {
        case 2: isLeap(year) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Howard Hinnant's `days_from_civil`: the year taken to begin in March, so February's length
    /// only matters at the end of a 400-year era.
    private static func days(fromYear year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// The year of a day counted from 1970-01-01 (`civil_from_days`).
    private static func year(ofDay days: Int) -> Int {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthFromMarch = (5 * dayOfYear + 2) / 153
        return yearOfEra + era * 400 + (monthFromMarch >= 10 ? 1 : 0)
    }
}
