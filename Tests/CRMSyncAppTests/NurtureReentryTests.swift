import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// A sequence with `reenroll_after` runs again for a contact whose trigger fires anew that long
/// after the last run ended; one without it runs once per contact. Each run is its own enrolment
/// with its own commands.
@Suite struct NurtureReentryTests {
    typealias H = NurtureHarness
    static let day: TimeInterval = 86_400
    static let start = H.at("2026-11-18T01:00:00Z")   // Wednesday 10:00 JST

    func runs(_ h: H, _ contact: String, _ sequence: String) async throws -> [String] {
        try await h.client.query(
            """
            SELECT status FROM crm.enrollments
             WHERE connector = \(H.connector) AND contact_external_id = \(contact) AND sequence = \(sequence)
             ORDER BY enrolled_at, id
            """, logger: h.logger
        ).collect().map { try $0.decode(String.self) }
    }

    @Test func aWebinarAttendeeRunsTheFollowUpAgainAQuarterLaterButAWhitePaperReaderOnlyOnce() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("kai")
            try await h.contact("rin")
            try await h.touch("webinar.attended", "kai", at: Self.start, campaign: "webinar-2026-11")
            try await h.touch("form.submitted", "rin", at: Self.start, campaign: "wp-2026-q4")
            try await h.tick(Self.start)
            // Both book a meeting: the goal ends both runs.
            for contact in ["kai", "rin"] { try await h.touch("meeting.booked", contact, at: Self.start + 3600) }
            try await h.tick(Self.start + 3600)
            #expect(try await runs(h, "kai", "webinar-followup") == ["exited"])
            #expect(try await runs(h, "rin", "whitepaper-followup") == ["exited"])

            // A month on: too soon for the webinar's 90 days.
            let month = Self.start + 30 * Self.day
            try await h.touch("webinar.attended", "kai", at: month, campaign: "webinar-2026-12")
            try await h.tick(month)
            #expect(try await runs(h, "kai", "webinar-followup") == ["exited"])

            // A quarter on: the webinar runs again (a new run, its own first mail); the white paper never.
            let quarter = Self.start + 100 * Self.day   // Fri 2027-02-26 10:00 JST
            try await h.touch("webinar.attended", "kai", at: quarter, campaign: "webinar-2027-02")
            try await h.touch("form.submitted", "rin", at: quarter, campaign: "wp-2026-q4")
            try await h.tick(quarter)
            #expect(try await runs(h, "kai", "webinar-followup") == ["exited", "active"])
            #expect(try await runs(h, "rin", "whitepaper-followup") == ["exited"])
            let firstMails = try await h.commands("send_step", contact: "kai").filter { $0.step == 1 }
            #expect(firstMails.map { H.iso($0.createdAt) } == ["2026-11-18T01:00:00Z", "2027-02-26T01:00:00Z"])
            // The same instant again changes nothing.
            #expect(try await h.tick(quarter) == NurtureTick.Summary())
        }
    }

    /// A prospect that stalls, is called, and stalls again gets the reactivation mails a second
    /// time: the second run is a new enrolment, so its commands do not collide with the first's.
    @Test func aProspectThatStallsTwiceGetsTheReactivationMailsTwice() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            let t0 = H.at("2026-11-02T01:00:00Z")        // Mon 10:00 JST
            try await h.contact("ken")
            try await h.deal("d1", contact: "ken", stage: "presentationscheduled", canonical: "proposal", at: t0)
            try await h.tick(t0)
            let first = t0 + 22 * Self.day                // Tue 11-24 10:00 JST: 22 days without sales activity
            #expect(try await h.tick(first).stalled == 1)
            try await h.touch("meeting.booked", "ken", at: first + 3600)   // the reactivation's goal
            try await h.tick(first + 3600)
            try await h.activity("call-1", kind: "call", contact: "ken", at: first + 2 * 3600)
            try await h.tick(first + 2 * 3600)
            #expect(try await runs(h, "ken", "stalled-reactivation") == ["exited"])

            let second = first + 2 * 3600 + 22 * Self.day // Thu 12-17 12:00 JST: 22 days after the call
            #expect(try await h.tick(second).stalled == 1)
            #expect(try await runs(h, "ken", "stalled-reactivation") == ["exited", "active"])
            let firstMails = try await h.commands("send_step", contact: "ken").filter { $0.sequence == "stalled-reactivation" && $0.step == 1 }
            #expect(firstMails.map { H.iso($0.createdAt) } == [H.iso(first), H.iso(second)])
        }
    }
}
