import CRMSyncConfig
import CRMSyncCore
import Foundation
import Testing

@Suite struct SequenceLoaderTests {
    static var mappings: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Mappings").path
    }

    func parse(_ text: String) throws(ConfigError) -> NurtureSequence {
        try SequenceLoader.parse(text: text, file: "bad.yaml") { (_) throws(ConfigError) in ("jp", [LocalDate("2026-11-23")!]) }
    }

    static let valid = """
        name: demo
        trigger: {event: form.submitted, asset: wp-1}
        time_zone: Asia/Tokyo
        send_window: "09:00-18:00"
        holidays: ../holidays/jp.yaml
        steps:
          - {step: 1, delay_business_days: 0, subject: a}
          - {step: 2, delay_business_days: 2, subject: b}
          - {step: 3, delay_business_days: 3, subject: c}
        """

    @Test func theShippedSequencesLoad() throws {
        let sequences = try SequenceLoader.loadDirectory("\(Self.mappings)/sequences")
        #expect(Set(sequences.map(\.name)) == [
            "whitepaper-followup", "webinar-followup", "trial-onboarding", "tradeshow-followup", "dormant-reengagement",
            "pricing-page-visitors", "lost-deal-reapproach", "stalled-reactivation",
        ])
        let whitepaper = try #require(sequences.first { $0.name == "whitepaper-followup" })
        #expect(whitepaper.tracks["main"]?.map(\.delayBusinessDays) == [0, 2, 3, 3])
        #expect(whitepaper.calendar.holidays.contains(LocalDate("2026-11-23")!))
        #expect(whitepaper.calendar.timeZone.identifier == "Asia/Tokyo")
        #expect(whitepaper.branches == [.init(afterStep: 2, condition: .notOpened, withinDays: 3, track: "resend")])
        let holidays = try SequenceLoader.loadHolidays(path: "\(Self.mappings)/holidays/jp.yaml")
        #expect(holidays.dates.count == 35)
    }

    @Test func aValidFileParses() throws {
        let sequence = try parse(Self.valid)
        #expect(sequence.trigger == .event(type: "form.submitted", asset: "wp-1"))
        #expect(sequence.calendar.window == SendWindow(start: 9 * 3600, end: 18 * 3600))
    }

    @Test(arguments: [
        ("steps:\n  - {step: 1, delay_business_days: 0, subject: a}", "bad.yaml:6: steps: expected 3 to 7 steps, got 1"),
        ("time_zone: Asia/Tokio", "bad.yaml:3: time_zone: unknown time zone 'Asia/Tokio'"),
        ("send_window: \"18:00-09:00\"", "bad.yaml:4: send_window: expected HH:MM-HH:MM"),
        ("trigger: {event: form.sent}", "bad.yaml:2: trigger.event: unknown event type 'form.sent'"),
        ("branches:\n  - {after_step: 9, if: not_opened, within_days: 3, goto: main}", "branches[0].after_step: no step 9"),
        ("branches:\n  - {after_step: 1, if: clicked, within_days: 3, goto: main}", "branches[0].link: is required for if: clicked"),
        ("goals:\n  - {stage: won}", "goals[0].stage: unknown canonical stage 'won'"),
        ("colour: blue", "bad.yaml:10: colour: unknown key"),
    ])
    func aBadFileIsOneLineNamingTheKey(change: String, expected: String) {
        var lines = Self.valid.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let key = String(change.prefix { $0 != ":" })
        if let index = lines.firstIndex(where: { $0.hasPrefix(key + ":") }) {
            var end = index + 1
            while end < lines.count, lines[end].hasPrefix(" ") { end += 1 }
            lines.replaceSubrange(index..<end, with: [change])
        } else {
            lines.append(change)
        }
        do {
            _ = try parse(lines.joined(separator: "\n"))
            Issue.record("accepted: \(change)")
        } catch {
            #expect(error.description.contains(expected), "\(error.description)")
            #expect(!error.description.contains("\n"))
        }
    }
}
