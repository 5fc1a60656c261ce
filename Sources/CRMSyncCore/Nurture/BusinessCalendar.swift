import Foundation

/// A calendar day with no time and no zone: what a holiday list and a business-day count speak in.
public struct LocalDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var year: Int
    public var month: Int
    public var day: Int

    public init(year: Int, month: Int, day: Int) {
        self.year = year
        self.month = month
        self.day = day
    }

    /// `YYYY-MM-DD`, or nil when it is not a real date.
    public init?(_ text: String) {
        let parts = text.split(separator: "-")
        guard parts.count == 3, parts[0].count == 4, parts[1].count == 2, parts[2].count == 2,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]) else { return nil }
        self.init(year: y, month: m, day: d)
        guard LocalDate(daysSinceEpoch: daysSinceEpoch) == self else { return nil }
    }

    /// Days since 1970-01-01 (proleptic Gregorian; Howard Hinnant's algorithm).
    public var daysSinceEpoch: Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    public init(daysSinceEpoch: Int) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        self.init(year: yoe + era * 400 + (m <= 2 ? 1 : 0), month: m, day: d)
    }

    public func adding(days: Int) -> LocalDate { LocalDate(daysSinceEpoch: daysSinceEpoch + days) }

    /// 1 = Monday … 7 = Sunday (ISO 8601).
    public var isoWeekday: Int {
        let r = (daysSinceEpoch + 3) % 7  // 1970-01-01 was a Thursday
        return (r < 0 ? r + 7 : r) + 1
    }

    /// `YYYY-MM-DD`.
    public var description: String {
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    public static func < (a: LocalDate, b: LocalDate) -> Bool { a.daysSinceEpoch < b.daysSinceEpoch }
}

/// The daily hours in which a sequence may send, in its time zone: `[start, end)`, in seconds from
/// local midnight.
public struct SendWindow: Sendable, Equatable {
    public var start: Int
    public var end: Int

    public init(start: Int, end: Int) {
        self.start = start
        self.end = end
    }

    /// `09:00-18:00`.
    public init?(_ text: String) {
        let halves = text.split(separator: "-").map { $0.trimmingCharacters(in: .whitespaces) }
        guard halves.count == 2, let start = Self.seconds(halves[0]), let end = Self.seconds(halves[1]), start < end else { return nil }
        self.init(start: start, end: end)
    }

    static func seconds(_ text: String) -> Int? {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0...24).contains(h), (0..<60).contains(m),
              h * 60 + m <= 24 * 60 else { return nil }
        return (h * 60 + m) * 60
    }

    public var text: String {
        String(format: "%02d:%02d-%02d:%02d", start / 3600, start % 3600 / 60, end / 3600, end % 3600 / 60)
    }
}

/// Business days (no weekend, no holiday) and a daily send window in one time zone. Pure: every
/// answer is computed from the instant passed in, never from the system clock.
///
/// `due(from:businessDays:)` is the rule the nurture engine schedules by (the SQL in
/// `NurtureSQL.due` implements the same rule over `crm.nurture_calendar_days`):
/// - 0 days: the moment itself when it is inside the window of a business day, else the next
///   window opening;
/// - N days: the N-th business day after the local date, at the same local time, moved into the
///   window (before it: the opening that day; at or after its end: the next business day's opening).
public struct BusinessCalendar: Sendable, Equatable {
    /// Names the holiday list (its rows in the database are shared by the sequences using it).
    public var name: String
    public var timeZone: TimeZone
    public var window: SendWindow
    public var holidays: Set<LocalDate>
    /// ISO weekdays that are never business days (default Saturday and Sunday).
    public var weekend: Set<Int>

    public init(name: String, timeZone: TimeZone, window: SendWindow, holidays: Set<LocalDate> = [], weekend: Set<Int> = [6, 7]) {
        self.name = name
        self.timeZone = timeZone
        self.window = window
        self.holidays = holidays
        self.weekend = weekend
    }

    public func isBusinessDay(_ date: LocalDate) -> Bool {
        !weekend.contains(date.isoWeekday) && !holidays.contains(date)
    }

    public func nextBusinessDay(after date: LocalDate) -> LocalDate {
        var next = date.adding(days: 1)
        while !isBusinessDay(next) { next = next.adding(days: 1) }
        return next
    }

    /// The local date and the seconds since local midnight of an instant.
    public func local(_ instant: Date) -> (date: LocalDate, seconds: Double) {
        let offset = Double(timeZone.secondsFromGMT(for: instant))
        let shifted = instant.timeIntervalSince1970 + offset
        let days = Int((shifted / 86_400).rounded(.down))
        return (LocalDate(daysSinceEpoch: days), shifted - Double(days) * 86_400)
    }

    /// The instant of a local date and time in this calendar's zone.
    public func instant(_ date: LocalDate, seconds: Double) -> Date {
        let naive = Double(date.daysSinceEpoch) * 86_400 + seconds
        // Two passes settle the offset across a DST change.
        var guess = Date(timeIntervalSince1970: naive - Double(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: naive))))
        guess = Date(timeIntervalSince1970: naive - Double(timeZone.secondsFromGMT(for: guess)))
        return guess
    }

    public func due(from start: Date, businessDays days: Int) -> Date {
        let (date, seconds) = local(start)
        var target = date
        var time = seconds
        if days == 0 {
            if !isBusinessDay(date) {
                target = nextBusinessDay(after: date)
                time = Double(window.start)
            }
        } else {
            for _ in 0..<days { target = nextBusinessDay(after: target) }
        }
        if time >= Double(window.end) {
            target = nextBusinessDay(after: target)
            time = Double(window.start)
        } else if time < Double(window.start) {
            time = Double(window.start)
        }
        return instant(target, seconds: time)
    }

    /// Every date in `[from, through]` with the count of business days up to and including it:
    /// the table the SQL schedules by.
    public func ordinals(from: LocalDate, through: LocalDate) -> [(date: LocalDate, ordinal: Int, business: Bool)] {
        var rows: [(LocalDate, Int, Bool)] = []
        var ordinal = 0
        var date = from
        while date <= through {
            let business = isBusinessDay(date)
            if business { ordinal += 1 }
            rows.append((date, ordinal, business))
            date = date.adding(days: 1)
        }
        return rows
    }
}
