import CRMSyncCore
import Foundation
import Testing

@Suite struct BusinessCalendarTests {
    let tokyo = BusinessCalendar(
        name: "jp", timeZone: TimeZone(identifier: "Asia/Tokyo")!, window: SendWindow("09:00-18:00")!,
        holidays: [LocalDate("2026-11-23")!, LocalDate("2026-11-03")!])

    func at(_ text: String) -> Date { CRMTimestamp.parse(text)! }
    func iso(_ date: Date) -> String { CRMTimestamp.iso(date) }

    @Test func localDatesRoundTripAndKnowTheirWeekday() {
        #expect(LocalDate("2026-11-23")!.isoWeekday == 1)  // Monday
        #expect(LocalDate("2026-11-22")!.isoWeekday == 7)
        #expect(LocalDate("2026-02-30") == nil)
        #expect(LocalDate(daysSinceEpoch: LocalDate("2027-03-01")!.daysSinceEpoch - 1).description == "2027-02-28")
    }

    @Test func zeroDaysInsideTheWindowIsNow() {
        // Wednesday 10:00 JST
        #expect(iso(tokyo.due(from: at("2026-11-18T01:00:00Z"), businessDays: 0)) == "2026-11-18T01:00:00.000Z")
    }

    @Test func zeroDaysOutsideTheWindowIsTheNextOpening() {
        // Wednesday 20:00 JST → Thursday 09:00 JST
        #expect(iso(tokyo.due(from: at("2026-11-18T11:00:00Z"), businessDays: 0)) == "2026-11-19T00:00:00.000Z")
        // Wednesday 07:00 JST → the same day 09:00
        #expect(iso(tokyo.due(from: at("2026-11-17T22:00:00Z"), businessDays: 0)) == "2026-11-18T00:00:00.000Z")
        // Saturday 12:00 JST → Monday is a holiday (勤労感謝の日) → Tuesday 09:00
        #expect(iso(tokyo.due(from: at("2026-11-21T03:00:00Z"), businessDays: 0)) == "2026-11-24T00:00:00.000Z")
    }

    @Test func businessDaysSkipWeekendsAndAHoliday() {
        // Friday 2026-11-20 10:00 JST + 3 business days: Mon 23 is a holiday → Tue 24, Wed 25, Thu 26.
        #expect(iso(tokyo.due(from: at("2026-11-20T01:00:00Z"), businessDays: 3)) == "2026-11-26T01:00:00.000Z")
        // Without the holiday it would be Wednesday.
        var plain = tokyo
        plain.holidays = []
        #expect(iso(plain.due(from: at("2026-11-20T01:00:00Z"), businessDays: 3)) == "2026-11-25T01:00:00.000Z")
    }

    @Test func aLateSendLandsInTheNextWindow() {
        // Thursday 17:30 JST + 1 business day = Friday 17:30, inside; 18:30 → Monday 09:00.
        #expect(iso(tokyo.due(from: at("2026-11-26T08:30:00Z"), businessDays: 1)) == "2026-11-27T08:30:00.000Z")
        #expect(iso(tokyo.due(from: at("2026-11-26T09:30:00Z"), businessDays: 1)) == "2026-11-30T00:00:00.000Z")
    }

    @Test func aZoneWithDaylightSavingKeepsLocalTime() {
        let newYork = BusinessCalendar(name: "us", timeZone: TimeZone(identifier: "America/New_York")!, window: SendWindow("09:00-17:00")!)
        // Friday 2026-10-30 10:00 EDT + 2 business days = Tuesday 2026-11-03 10:00 EST (DST ended Nov 1).
        #expect(iso(newYork.due(from: at("2026-10-30T14:00:00Z"), businessDays: 2)) == "2026-11-03T15:00:00.000Z")
    }

    @Test func ordinalsCountBusinessDays() {
        let rows = tokyo.ordinals(from: LocalDate("2026-11-20")!, through: LocalDate("2026-11-24")!)
        #expect(rows.map(\.ordinal) == [1, 1, 1, 1, 2])
        #expect(rows.map(\.business) == [true, false, false, false, true])
    }
}
