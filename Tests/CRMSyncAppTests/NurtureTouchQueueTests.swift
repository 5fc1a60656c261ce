import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// Every touch is used for enrolment and scoring exactly once, whenever it becomes usable: when
/// its transaction commits (even after a tick read touches inserted after it), or when its contact
/// is found by e-mail later.
@Suite struct NurtureTouchQueueTests {
    typealias H = NurtureHarness
    static let start = H.at("2026-11-18T01:00:00Z")   // Wednesday 10:00 JST

    func score(_ h: H, _ contact: String) async throws -> Int? {
        try await h.client.query(
            "SELECT score FROM crm.lead_scores WHERE connector = \(H.connector) AND contact_external_id = \(contact)", logger: h.logger
        ).collect().first?.decode(Int.self)
    }

    @Test func aTouchCommittedAfterATickReadALaterOneIsStillEnrolledAndScoredOnce() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("late")
            try await h.contact("early")
            try await client.withConnection { writer in
                // A slow writer takes the lower id and commits last.
                try await writer.query("BEGIN", logger: h.logger)
                try await writer.query(
                    """
                    INSERT INTO crm.touches (touch_key, connector, contact_external_id, campaign, kind, occurred_at)
                    VALUES ('slow-1', \(H.connector), 'late', 'wp-2026-q4', 'form.submitted', \(Self.start))
                    """, logger: h.logger)
                try await h.touch("form.submitted", "early", at: Self.start, campaign: "wp-2026-q4")
                try await h.tick(Self.start)
                #expect(try await h.enrollments("early")["whitepaper-followup"] != nil)
                #expect(try await h.enrollments("late").isEmpty, "not committed yet")
                try await writer.query("COMMIT", logger: h.logger)
            }
            try await h.tick(Self.start + 60)
            #expect(try await h.enrollments("late")["whitepaper-followup"]?.status == "active")
            try await h.tick(Self.start + 120)
            // form.submitted is worth 15 in the HubSpot mapping: counted once each, never again.
            #expect(try await score(h, "early") == 15)
            #expect(try await score(h, "late") == 15)
        }
    }

    @Test func aTouchWhoseContactIsFoundByEmailLaterIsEnrolledAndScored() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            // The event came before the contact was synced: only its e-mail is known.
            try await client.query(
                """
                INSERT INTO crm.touches (touch_key, email, campaign, kind, occurred_at)
                VALUES ('events:mei-1', 'mei@example.co.jp', 'wp-2026-q4', 'form.submitted', \(Self.start))
                """, logger: h.logger)
            try await h.tick(Self.start)
            try await h.contact("mei")
            try await h.tick(Self.start + 60)
            #expect(try await h.enrollments("mei").isEmpty, "the touch has no contact yet")
            // The attribution refresh matches it by e-mail.
            try await client.query("SELECT crm.refresh_attribution()", logger: h.logger)
            try await h.tick(Self.start + 120)
            try await h.tick(Self.start + 180)
            #expect(try await h.enrollments("mei")["whitepaper-followup"]?.status == "active")
            #expect(try await score(h, "mei") == 15)
        }
    }
}
