import CRMSyncConfig
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Testing

/// Issue 12 part 1: a step goes out only at an instant inside its sequence's send window on a
/// business day of its calendar, whenever the ticks happen to run; one found due outside waits for
/// the next window opening.
@Suite struct NurtureSendWindowTests {
    typealias H = NurtureHarness
    static let hour: TimeInterval = 3600
    static let minute: TimeInterval = 60

    /// A five-step sequence in Tokyo's 09:00–18:00 window on Japan's calendar (`Mappings/holidays/jp.yaml`).
    static func drill() throws -> NurtureSequence {
        let jp = try SequenceLoader.loadHolidays(path: "\(TestDatabase.packageRoot)/Mappings/holidays/jp.yaml")
        return try SequenceLoader.parse(
            text: """
                name: window-drill
                trigger: {event: form.submitted, asset: window-drill}
                time_zone: Asia/Tokyo
                send_window: "09:00-18:00"
                holidays: jp.yaml
                steps:
                  - {step: 1, delay_business_days: 0, subject: one}
                  - {step: 2, delay_business_days: 1, subject: two}
                  - {step: 3, delay_business_days: 2, subject: three}
                  - {step: 4, delay_business_days: 1, subject: four}
                  - {step: 5, delay_business_days: 3, subject: five}
                """,
            file: "window-drill.yaml", holidays: { _ in jp })
    }

    /// Inside the window (`[start, end)` local time) of a business day: checked from the calendar's
    /// parts, not through the engine's own scheduling rule.
    static func isOpen(_ calendar: BusinessCalendar, _ instant: Date) -> Bool {
        let (date, seconds) = calendar.local(instant)
        return calendar.isBusinessDay(date) && seconds >= Double(calendar.window.start) && seconds < Double(calendar.window.end)
    }

    static func jst(_ calendar: BusinessCalendar, _ instant: Date) -> String {
        let (date, seconds) = calendar.local(instant)
        return "\(date) \(String(format: "%02d:%02d", Int(seconds) / 3600, Int(seconds) % 3600 / 60)) JST (weekday \(date.isoWeekday))"
    }

    /// The reported case with the shipped white-paper sequence: step 1 at 16:23 JST on Friday
    /// 2026-09-18; step 2 falls due two business days later (Mon–Wed 09-21..23 are holidays) at
    /// 16:23 JST on Friday 09-25; no tick between 15:37 and 18:30; the 18:30 tick must not send it,
    /// nor the weekend's; Monday's first tick inside the window does.
    @Test func aStepFoundDueAfterTheWindowClosedWaitsForMondaysOpening() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("ken")
            let stepOne = H.at("2026-09-18T07:23:00Z")        // Fri 16:23 JST
            try await h.touch("form.submitted", "ken", at: stepOne, campaign: "wp-2026-q4")
            #expect(try await h.tick(stepOne).sent == 1)
            try await h.touch("email.opened", "ken", at: stepOne + Self.hour, sequence: "whitepaper-followup", step: 1)
            #expect(try await h.enrollments("ken")["whitepaper-followup"]?.nextDue == H.at("2026-09-25T07:23:00Z"))

            #expect(try await h.tick(H.at("2026-09-25T06:37:00Z")).sent == 0)    // Fri 15:37 JST: not due yet
            let late = H.at("2026-09-25T09:30:00Z")                               // Fri 18:30 JST: due, window closed
            #expect(try await h.tick(late).sent == 0)
            #expect(try await h.tick(late) == NurtureTick.Summary(), "a second tick at the same instant changes nothing")
            #expect(try await h.enrollments("ken")["whitepaper-followup"]?.nextDue == H.at("2026-09-28T00:00:00Z"),
                    "rescheduled to the next window opening: Mon 09:00 JST")
            #expect(try await h.tick(H.at("2026-09-26T03:00:00Z")).sent == 0)    // Sat 12:00 JST
            #expect(try await h.tick(H.at("2026-09-27T23:59:00Z")).sent == 0)    // Mon 08:59 JST

            let monday = H.at("2026-09-28T00:10:00Z")                             // Mon 09:10 JST
            #expect(try await h.tick(monday).sent == 1)
            let sends = try await h.commands("send_step", contact: "ken")
            #expect(sends.map { "\($0.step!)@\(H.iso($0.createdAt))" } == ["1@2026-09-18T07:23:00Z", "2@2026-09-28T00:10:00Z"])
            #expect(sends.last?.payload.contains("\"created_at\": \"2026-09-28T00:10:00Z\"") == true, "the body says when it was sent")
        }
    }

    /// Ticks every 2 h 53 min (so they land at every hour of the day and night) from Mon 2026-04-20
    /// for five weeks, across Golden Week (04-29, 05-04..06 holidays), with fourteen contacts
    /// enrolled at odd hours, one paused by a sales call and resumed, and a three-day outage after
    /// which the first tick runs on a Saturday: every `send_step` is created at a tick instant
    /// inside the window on a business day in Tokyo, no step before its delay, each step of each
    /// enrolment exactly once, and all of them in the end.
    @Test func irregularTicksAcrossGoldenWeekAndAnOutageSendOnlyInsideTheWindow() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            let drill = try Self.drill()
            let calendar = drill.calendar
            #expect(!calendar.isBusinessDay(LocalDate(year: 2026, month: 5, day: 4)), "Golden Week comes from jp.yaml")
            let definitions = NurtureDefinitions(sequences: [drill], policies: h.definitions.policies)
            let tick = NurtureTick(client: client, logger: h.logger)

            let first = H.at("2026-04-20T00:17:00Z")
            let arrivals = (0..<14).map { ("c\($0)", first + Double($0) * (29 * Self.hour + 41 * Self.minute)) }
            for (contact, _) in arrivals { try await h.contact(contact) }
            let call = arrivals[3].1 + 26 * Self.hour            // c3's owner calls: a 14-day silent period
            var arrived = 0, called = false

            let outageFrom = H.at("2026-05-13T03:00:00Z"), outageTo = outageFrom + 72 * Self.hour
            var ticks: Set<Date> = [], afterOutage: Date?
            var now = H.at("2026-04-20T00:00:00Z")
            while now <= H.at("2026-05-25T00:00:00Z") {
                try Task.checkCancellation()
                defer { now += 2 * Self.hour + 53 * Self.minute }
                if now >= outageFrom && now < outageTo { continue }   // nothing runs
                if now >= outageTo && afterOutage == nil { afterOutage = now }
                while arrived < arrivals.count && arrivals[arrived].1 <= now {
                    try await h.touch("form.submitted", arrivals[arrived].0, at: arrivals[arrived].1, campaign: "window-drill")
                    arrived += 1
                }
                if !called && call <= now {
                    try await h.activity("call-c3", kind: "call", contact: "c3", at: call)
                    called = true
                }
                ticks.insert(now)
                _ = try await tick.run(definitions: definitions, now: now)
                let outbox = try await h.outboxCount()
                #expect(try await tick.run(definitions: definitions, now: now) == NurtureTick.Summary(), "second tick at \(H.iso(now))")
                #expect(try await h.outboxCount() == outbox)
            }
            let resumedAt = try #require(afterOutage)
            #expect(!calendar.isBusinessDay(calendar.local(resumedAt).date), "the first tick after the outage is on a weekend")
            #expect(try await h.commands("pause", contact: "c3").count == 1)
            #expect(try await h.commands("resume", contact: "c3").count == 1)

            let sends = try await h.commands("send_step").filter { $0.sequence == "window-drill" }
            for send in sends {
                let open = Self.isOpen(calendar, send.createdAt)
                #expect(open, "\(send.contact) step \(send.step!) sent \(Self.jst(calendar, send.createdAt)), outside the window")
                #expect(ticks.contains(send.createdAt), "sent at a tick's instant")
                #expect(send.payload.contains("\"created_at\": \"\(H.iso(send.createdAt))\""), "\(send.payload)")
            }
            let delays = Dictionary(uniqueKeysWithValues: drill.tracks["main"]!.map { ($0.step, $0.delayBusinessDays) })
            for (contact, _) in arrivals {
                let mine = sends.filter { $0.contact == "hs:\(contact)" }
                #expect(mine.map(\.step!) == [1, 2, 3, 4, 5], "\(contact): each step once, in order: \(mine)")
                for (previous, next) in zip(mine, mine.dropFirst()) {
                    let earliest = calendar.due(from: previous.createdAt, businessDays: delays[next.step!]!)
                    #expect(next.createdAt >= earliest, "\(contact) step \(next.step!) before its delay: \(next)")
                }
                #expect(try await h.enrollments(contact)["window-drill"]?.status == "completed")
            }
        }
    }
}
