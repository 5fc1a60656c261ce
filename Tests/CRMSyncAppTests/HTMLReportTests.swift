import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// `crm-sync report html` through the real database: one self-contained file whose charts carry
/// the figures of the reporting views, with user-supplied names escaped.
@Suite struct HTMLReportTests {
    let cli = CommandLineTests()
    let logger = TestDatabase.logger

    @Test func theReportIsOneSelfContainedPageWithChartsOfTheViews() async throws {
        try await TestDatabase.with { client, url in
            // The article's worked example (900% under every model), a campaign whose name is markup,
            // a funnel, sequence e-mail events, a stalled prospect and an SLA breach.
            try await client.query("""
                INSERT INTO crm.campaign_costs (campaign, category, amount, currency, period)
                VALUES ('wp-2026-q4', 'content', 100000, 'JPY', '2026-10'), ('<script>alert(1)</script>', 'tool', 5000, 'JPY', '2026-10')
                """, logger: logger)
            for i in 1...10 {
                let won = i <= 2
                try await client.query("""
                    INSERT INTO crm.deals (connector, external_id, amount, currency, stage, canonical_stage, created_at, closed_at,
                                           is_closed, is_won, modified_at)
                    VALUES ('hs', \("d\(i)"), \(won ? (i == 1 ? "1200000" : "800000") : "500000")::numeric, 'JPY',
                            \(won ? "closedwon" : "qualifiedtobuy"), \(won ? "closed_won" : "sql"),
                            '2026-10-10T00:00:00Z', \(won ? "2026-11-01T00:00:00Z" : nil)::timestamptz, \(won), \(won), now())
                    """, logger: logger)
                try await client.query("INSERT INTO crm.deal_contacts VALUES ('hs', \("d\(i)"), \("c\(i)"))", logger: logger)
                try await client.query("""
                    INSERT INTO crm.stage_history (connector, deal_external_id, stage, canonical_stage, entered_at)
                    VALUES ('hs', \("d\(i)"), 'qualifiedtobuy', 'sql', '2026-10-10T00:00:00Z')
                    """, logger: logger)
                if won {
                    try await client.query("""
                        INSERT INTO crm.stage_history (connector, deal_external_id, stage, canonical_stage, entered_at)
                        VALUES ('hs', \("d\(i)"), 'closedwon', 'closed_won', '2026-11-01T00:00:00Z')
                        """, logger: logger)
                }
                try await client.query("""
                    INSERT INTO crm.touches (touch_key, connector, contact_external_id, campaign, kind, occurred_at, sequence, step)
                    VALUES (\("s\(i)"), 'hs', \("c\(i)"), 'wp-2026-q4', 'email.sent', '2026-10-01T00:00:00Z', 'white-paper', 1),
                           (\("o\(i)"), 'hs', \("c\(i)"), 'wp-2026-q4', 'email.opened', '2026-10-01T02:00:00Z', 'white-paper', 1)
                    """, logger: logger)
            }
            try await client.query("""
                INSERT INTO crm.stalled (connector, contact_external_id, owner, canonical_stage, flagged_at, last_sales_touch_at)
                VALUES ('hs', 'c3', 'owner-7', 'sql', '2026-11-20T00:00:00Z', '2026-10-20T00:00:00Z')
                """, logger: logger)
            try await client.query("""
                INSERT INTO crm.handoffs (connector, contact_external_id, owner, score, handed_off_at, sla_due_at, breached_at)
                VALUES ('hs', 'c4', 'owner-7', 80, '2026-11-20T00:00:00Z', '2026-11-21T00:00:00Z', '2026-11-21T00:00:00Z')
                """, logger: logger)

            let out = FileManager.default.temporaryDirectory.appendingPathComponent("\(UUID().uuidString).html").path
            let result = try await cli.run(["report", "html", "--out", out], environment: ["DATABASE_URL": TestDatabase.text(url)])
            #expect(result.status == 0, "\(result.stderr)")
            let html = try String(contentsOfFile: out, encoding: .utf8)

            #expect(html.hasPrefix("<!DOCTYPE html>"))
            // Self-contained: no script, no stylesheet or image fetched from anywhere.
            #expect(!html.contains("<script"), "user data must be escaped, and the page needs no script")
            #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
            for pattern in ["src=\"http", "href=\"http", "@import", "url(http"] { #expect(!html.contains(pattern), "\(pattern)") }
            // One chart per section that has data: ROI (JPY), funnel, e-mail, stalled, breaches.
            #expect(html.components(separatedBy: "<svg").count - 1 == 5)
            // The worked example's figure, under each of the six models.
            #expect(html.components(separatedBy: "<td class=\"num\">900%</td>").count - 1 == 6)
            #expect(html.contains("900%</text>"), "the ROI chart labels its bars")
            #expect(html.contains("white-paper · step 1"))
            #expect(html.contains("100.0%</text>"), "open rate of step 1 is 10 of 10")
            #expect(html.contains("owner-7"))
            #expect(html.contains("40% first, 40% last, 20% shared by the rest"), "the weights each model uses are printed")
        }
    }
}
