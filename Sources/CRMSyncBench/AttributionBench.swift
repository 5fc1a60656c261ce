import ArgumentParser
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO

/// All six attribution models over a generated programme, and the ROI view on top of it. The
/// baseline is writing the same touches with one `INSERT … SELECT` in the same run.
struct AttributionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attribution",
        abstract: "Time of crm.refresh_attribution() (six models) and of a reporting.roi_by_campaign query.")

    @Option(help: "Touches (e-mail clicks, forms, webinars) spread over the contacts.") var touches = 1_000_000
    @Option(help: "Deals, each with one or two contacts; about a third are won.") var deals = 100_000
    @Option(help: "Campaigns the touches belong to.") var campaigns = 40
    @Option(help: "How many times the ROI query is timed (the median is printed).") var repeats = 7
    @OptionGroup var server: ServerOptions

    func run() async throws {
        do { try await measure() } catch { throw ValidationError(DatabaseError.describe(error)) }
    }

    func measure() async throws {
        let logger = Bench.logger
        let server = try server.server()
        print("attribution benchmark: \(touches) touches, \(deals) deals, \(campaigns) campaigns, PostgreSQL \(server.host):\(server.port)")
        try await TestDatabase.with(server: server) { client, _ in
            func time(_ sql: String) async throws -> Double { try await Bench.time(client, sql) }
            func count(_ sql: String) async throws -> Int64 {
                try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect().first!.decode(Int64.self)
            }
            let insertSeconds = try await Self.generate(client, touches: touches, deals: deals, campaigns: campaigns)
            _ = try await time("ANALYZE")
            let refreshSeconds = try await time("SELECT crm.refresh_attribution()")
            let links = try await count("SELECT count(*)::int8 FROM crm.deal_touches")
            let credits = try await count("SELECT count(*)::int8 FROM crm.attribution_credits")
            let won = try await count("SELECT count(DISTINCT deal_external_id)::int8 FROM crm.attribution_credits")
            let inexact = try await count("""
                SELECT count(*)::int8 FROM (
                    SELECT c.model, c.deal_external_id, sum(c.credit) AS total, min(d.amount) AS amount
                      FROM crm.attribution_credits c JOIN crm.deals d ON d.connector = c.connector AND d.external_id = c.deal_external_id
                     GROUP BY 1, 2) s WHERE total <> amount
                """)
            _ = try await time("ANALYZE")
            var one: [Double] = [], all: [Double] = []
            for _ in 0..<repeats {
                one.append(try await time("SELECT * FROM reporting.roi_by_campaign WHERE model = 'linear'"))
                all.append(try await time("SELECT * FROM reporting.roi_by_campaign"))
            }
            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            print("baseline: INSERT of the \(touches) touches in \(Bench.format(insertSeconds)) s")
            print("refresh:  six models in \(Bench.format(refreshSeconds)) s (\(Bench.format(refreshSeconds / insertSeconds, 1))x the touch INSERT): \(links) deal-touch links, \(credits) credits for \(won) won deals")
            print("exact:    \(inexact) (model, deal) pairs whose credits do not add up to the amount")
            print("roi view: one model \(Bench.format(median(one) * 1000, 1)) ms, all six models \(Bench.format(median(all) * 1000, 1)) ms (median of \(repeats))")
        }
    }

    /// The programme both attribution benchmarks measure: `deals` deals (a third won, JPY and USD)
    /// with one or two contacts each, `touches` touches over `campaigns` campaigns, and costs.
    /// Returns the seconds of the touch INSERT (the attribution bench's baseline).
    static func generate(_ client: PostgresClient, touches: Int, deals: Int, campaigns: Int) async throws -> Double {
        func time(_ sql: String) async throws -> Double { try await Bench.time(client, sql) }
        // A year of deals; touches fall in the year before and during them.
        _ = try await time("""
            INSERT INTO crm.contacts (connector, external_id, email, modified_at)
            SELECT 'bench', c::text, 'c' || c || '@example.com', now() FROM generate_series(1, \(deals)) c
            """)
        _ = try await time("""
            INSERT INTO crm.deals (connector, external_id, name, amount, currency, stage, canonical_stage,
                                   created_at, closed_at, is_closed, is_won, modified_at)
            SELECT 'bench', d::text, 'Deal ' || d, (100000 + (d * 7919) % 4900000)::numeric,
                   CASE WHEN d % 5 = 0 THEN 'USD' ELSE 'JPY' END,
                   CASE WHEN d % 3 = 0 THEN 'closedwon' WHEN d % 3 = 1 THEN 'closedlost' ELSE 'contractsent' END,
                   CASE WHEN d % 3 = 0 THEN 'closed_won' WHEN d % 3 = 1 THEN 'closed_lost' ELSE 'proposal' END,
                   timestamptz '2026-01-01' + (d % 300) * interval '1 day',
                   CASE WHEN d % 3 <> 2 THEN timestamptz '2026-01-01' + (d % 300 + 10 + d % 50) * interval '1 day' END,
                   d % 3 <> 2, d % 3 = 0, now()
              FROM generate_series(1, \(deals)) d
            """)
        _ = try await time("""
            INSERT INTO crm.deal_contacts (connector, deal_external_id, contact_external_id)
            SELECT 'bench', d::text, d::text FROM generate_series(1, \(deals)) d
            UNION ALL
            SELECT 'bench', d::text, ((d * 7) % \(deals) + 1)::text FROM generate_series(1, \(deals)) d WHERE d % 2 = 0 AND (d * 7) % \(deals) + 1 <> d
            """)
        _ = try await time("""
            INSERT INTO crm.campaign_costs (campaign, category, amount, currency, period)
            SELECT 'campaign-' || c, 'content', 1000000 + c * 10000, 'JPY', '2026-06' FROM generate_series(1, \(campaigns)) c
            UNION ALL
            SELECT 'campaign-' || c, 'tool', 5000 + c * 100, 'USD', '2026-06' FROM generate_series(1, \(campaigns)) c
            """)
        return try await time("""
            INSERT INTO crm.touches (touch_key, connector, contact_external_id, campaign, kind, occurred_at, source)
            SELECT 't' || t, 'bench', ((t * 104729) % \(deals) + 1)::text, 'campaign-' || (t % \(campaigns) + 1),
                   (ARRAY['email.clicked', 'email.opened', 'form.submitted', 'webinar.attended'])[t % 4 + 1],
                   timestamptz '2025-10-01' + ((t * 15485863) % (420 * 86400)) * interval '1 second', 'bench'
              FROM generate_series(1::int8, \(touches)) t
            """)
    }
}
