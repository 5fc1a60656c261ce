import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Testing

/// Must show 3: branches and the global unsubscribe exit, with the shipped sequences.
@Suite struct NurtureBranchTests {
    typealias H = NurtureHarness
    static let hour: TimeInterval = 3600
    static let start = H.at("2026-11-18T01:00:00Z")   // Wednesday 10:00 JST

    func sends(_ h: H, _ contact: String) async throws -> [String] {
        try await h.commands("send_step", contact: contact).map { "\($0.step!)@\(H.iso($0.createdAt))" }
    }

    /// White paper: step 2 (Fri 11-20) not opened within 3 days → resend with another subject at
    /// the next window (Mon 11-23 is a holiday: Tue 09:00 JST), then the resend track goes on.
    @Test func notOpenedStepIsResentWithAnotherSubject() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("yui")
            try await h.touch("form.submitted", "yui", at: Self.start, campaign: "wp-2026-q4")
            try await NurtureScenarioTests.run(h, from: Self.start, to: Self.start + 12 * 24 * Self.hour) { now in
                // She opens step 1 only.
                if now == Self.start + Self.hour { try await h.touch("email.opened", "yui", at: now, sequence: "whitepaper-followup", step: 1) }
            }
            #expect(try await sends(h, "yui") == [
                "1@2026-11-18T01:00:00Z", "2@2026-11-20T01:00:00Z",
                "21@2026-11-24T00:00:00Z",   // branch fired Mon 11-23 10:00 JST (3 days), a holiday: Tue 09:00 JST
                "22@2026-11-27T00:00:00Z",   // +3 business days
            ])
            let resend = try await h.commands("send_step", contact: "yui").first { $0.step == 21 }
            #expect(resend?.payload.contains("\"subject\": \"Did you see this?") == true)
            #expect(resend?.payload.contains("\"track\": \"resend\"") == true)
        }
    }

    /// Webinar: a click on the product A link in step 1 switches to the product-A track; the main
    /// track's step 2 never goes out.
    @Test func clickOnProductALinkSwitchesTrack() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("sho")
            try await h.contact("mei")
            try await h.touch("webinar.attended", "sho", at: Self.start)
            try await h.touch("webinar.attended", "mei", at: Self.start)
            try await NurtureScenarioTests.run(h, from: Self.start, to: Self.start + 8 * 24 * Self.hour) { now in
                if now == Self.start + 2 * Self.hour {
                    try await h.touch("email.clicked", "sho", at: now - 1800, sequence: "webinar-followup", step: 1,
                                      url: "https://example.com/products/a?utm_source=webinar")
                    try await h.touch("email.clicked", "mei", at: now - 1800, sequence: "webinar-followup", step: 1,
                                      url: "https://example.com/products/b")
                }
            }
            #expect(try await sends(h, "sho") == [
                "1@2026-11-18T01:00:00Z",
                "31@2026-11-19T03:00:00Z",   // switched Wed 12:00 JST; +1 business day
                "32@2026-11-25T03:00:00Z",   // +3 business days (Mon 11-23 a holiday)
            ])
            #expect(try await sends(h, "mei") == ["1@2026-11-18T01:00:00Z", "2@2026-11-20T01:00:00Z", "3@2026-11-26T01:00:00Z"])
        }
    }

    /// An unsubscribe leaves every sequence at once, and the contact is never enrolled or mailed again.
    @Test func unsubscribeExitsEverySequence() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("rin")
            try await h.touch("form.submitted", "rin", at: Self.start, campaign: "wp-2026-q4")
            try await h.touch("webinar.attended", "rin", at: Self.start)
            try await h.tick(Self.start)
            #expect(Set(try await h.enrollments("rin").values.filter { $0.status == "active" }.map(\.sequence)) == ["whitepaper-followup", "webinar-followup"])
            let unsubscribed = Self.start + 5 * Self.hour
            try await h.touch("email.unsubscribed", "rin", at: unsubscribed - 1800, sequence: "webinar-followup", step: 1)
            let summary = try await h.tick(unsubscribed)
            #expect(summary.exited == 2)
            let enrollments = try await h.enrollments("rin")
            #expect(enrollments.values.map(\.status) == ["exited", "exited"])
            let exits = try await h.commands("exit", contact: "rin")
            #expect(Set(exits.compactMap(\.sequence)) == ["whitepaper-followup", "webinar-followup"])
            #expect(exits.allSatisfy { $0.payload.contains("\"reason\": \"unsubscribed\"") })
            // A later trigger enrols nobody, and nothing is sent for weeks.
            try await h.touch("page.viewed", "rin", at: unsubscribed + Self.hour, url: "https://example.com/pricing")
            try await NurtureScenarioTests.run(h, from: unsubscribed + Self.hour, to: unsubscribed + 14 * 24 * Self.hour)
            #expect(try await h.enrollments("rin").count == 2)
            #expect(try await sends(h, "rin") == ["1@2026-11-18T01:00:00Z", "1@2026-11-18T01:00:00Z"])
        }
    }

    /// Bounces as the receiver stores them: a soft one (mailbox full) leaves the sequence running,
    /// a hard one ends every sequence and suppresses the contact, like an unsubscribe.
    @Test func aSoftBounceKeepsTheSequencesAndAHardOneEndsThem() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await client.query(
                "INSERT INTO crm.connectors (name, kind, base_url) VALUES (\(H.connector), 'hubspot', 'http://127.0.0.1:9')", logger: h.logger)
            try await h.contact("sora")
            try await h.touch("form.submitted", "sora", at: Self.start, campaign: "wp-2026-q4")
            try await h.tick(Self.start)
            #expect(try await h.enrollments("sora")["whitepaper-followup"]?.status == "active")

            func bounce(_ id: String, at: Date, _ fields: String) async throws {
                let payload = #"{"type":"email.bounced","id":"\#(id)","occurred_at":"\#(H.iso(at))","contact":{"email":"sora@example.co.jp","external_id":"hs:sora"},"sequence":"whitepaper-followup","step":1\#(fields)}"#
                try await EventInbox.commit(
                    [.init(source: "events", event: InboxEvent(deliveryID: id, eventType: "email.bounced", occurredAt: at, recordKey: "hs:sora", payload: payload))],
                    client: client, logger: h.logger)
                #expect(try await InboxProcessor(client: client, logger: h.logger).drain().applied == 1)
            }
            let soft = Self.start + 2 * Self.hour
            try await bounce("evt_soft", at: soft, #","bounce_type":"soft""#)
            #expect(try await h.tick(soft + Self.hour).exited == 0)
            #expect(try await h.enrollments("sora")["whitepaper-followup"]?.status == "active")
            // Step 2 still goes out on its day.
            try await NurtureScenarioTests.run(h, from: soft + 2 * Self.hour, to: Self.start + 3 * 24 * Self.hour)
            #expect(try await sends(h, "sora").count == 2)

            let hard = Self.start + 3 * 24 * Self.hour + Self.hour
            try await bounce("evt_hard", at: hard, "")   // no severity given: taken as hard
            #expect(try await h.tick(hard + Self.hour).exited == 1)
            #expect(try await h.enrollments("sora")["whitepaper-followup"]?.status == "exited")
            let exits = try await h.commands("exit", contact: "sora")
            #expect(exits.count == 1 && exits[0].payload.contains("\"reason\": \"bounced hard\""))
            let kinds = try await client.query(
                "SELECT bounce FROM crm.touches WHERE kind = 'email.bounced' ORDER BY occurred_at", logger: h.logger
            ).collect().map { try $0.decode(String?.self) }
            #expect(kinds == ["soft", "hard"])
        }
    }
}
