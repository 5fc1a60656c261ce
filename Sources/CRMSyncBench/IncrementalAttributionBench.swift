import ArgumentParser
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO

/// The incremental attribution refresh against the full one, in one run on the same data: the
/// programme of `attribution` (1,000,000 touches, 100,000 deals), one full refresh, then rounds
/// that each change `--changed-percent` of the deals (amounts, stages, new touches) and time
/// `crm.refresh_attribution_pending()`. The baseline is the full refresh; at the end a second full
/// refresh checks that the incremental rounds left exactly its rows.
struct IncrementalAttributionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "attribution-incremental",
        abstract: "Time of crm.refresh_attribution_pending() after changing 1% of the deals, against crm.refresh_attribution().")

    @Option(help: "Touches (e-mail clicks, forms, webinars) spread over the contacts.") var touches = 1_000_000
    @Option(help: "Deals, each with one or two contacts; about a third are won.") var deals = 100_000
    @Option(help: "Campaigns the touches belong to.") var campaigns = 40
    @Option(help: "Percent of the deals each round changes (a third new amounts, a third a new stage, a third a new touch).") var changedPercent = 1
    @Option(help: "Rounds of changes, each timed (the median is the figure).") var rounds = 5
    @OptionGroup var server: ServerOptions

    func validate() throws {
        guard (1...50).contains(changedPercent) else { throw ValidationError("--changed-percent: expected 1 to 50") }
        guard rounds >= 1 else { throw ValidationError("--rounds: expected 1 or more") }
    }

    func run() async throws {
        do { try await measure() } catch { throw ValidationError(DatabaseError.describe(error)) }
    }

    func measure() async throws {
        let logger = Bench.logger
        let server = try server.server()
        print("incremental attribution benchmark: \(touches) touches, \(deals) deals, \(campaigns) campaigns, \(changedPercent)% of the deals changed per round, PostgreSQL \(server.host):\(server.port)")
        try await TestDatabase.with(server: server) { client, _ in
            func time(_ sql: String) async throws -> Double { try await Bench.time(client, sql) }
            func count(_ sql: String) async throws -> Int64 {
                try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect().first!.decode(Int64.self)
            }
            _ = try await AttributionBench.generate(client, touches: touches, deals: deals, campaigns: campaigns)
            _ = try await time("ANALYZE")
            let fullSeconds = try await time("SELECT crm.refresh_attribution()")
            // What autovacuum does within a minute of the rewrite: the incremental plans read these statistics.
            _ = try await time("ANALYZE crm.deal_touches, crm.attribution_credits")

            let stride = 100 / changedPercent
            var incremental: [Double] = [], queued: [Int64] = [], changes: [Double] = []
            for round in 0..<rounds {
                let pick = "d % \(stride) = \((round * 7 + 3) % stride)"
                var changeSeconds = try await time("""
                    UPDATE crm.deals SET amount = amount + 1000, modified_at = now()
                      FROM generate_series(1, \(deals)) d
                     WHERE connector = 'bench' AND external_id = d::text AND \(pick) AND (d / \(stride)) % 3 = 0
                    """)
                changeSeconds += try await time("""
                    UPDATE crm.deals SET is_won = NOT is_won, is_closed = true, stage = CASE WHEN is_won THEN 'closedlost' ELSE 'closedwon' END,
                           canonical_stage = CASE WHEN is_won THEN 'closed_lost' ELSE 'closed_won' END,
                           closed_at = coalesce(closed_at, created_at + interval '20 days'), modified_at = now()
                      FROM generate_series(1, \(deals)) d
                     WHERE connector = 'bench' AND external_id = d::text AND \(pick) AND (d / \(stride)) % 3 = 1
                    """)
                changeSeconds += try await time("""
                    INSERT INTO crm.touches (touch_key, connector, contact_external_id, campaign, kind, occurred_at, source)
                    SELECT 'r\(round)-' || d, 'bench', d::text, 'campaign-' || (d % \(campaigns) + 1), 'form.submitted',
                           timestamptz '2026-01-01' + (d % 300 + 3) * interval '1 day', 'bench'
                      FROM generate_series(1, \(deals)) d
                     WHERE \(pick) AND (d / \(stride)) % 3 = 2
                    """)
                changes.append(changeSeconds)
                queued.append(try await count("SELECT count(DISTINCT (connector, deal_external_id))::int8 FROM crm.attribution_pending"))
                incremental.append(try await time("SELECT crm.refresh_attribution_pending()"))
            }

            // The check: a full refresh of the same data leaves exactly the rows the rounds left.
            for table in ["deal_touches", "attribution_credits", "campaign_influence", "attribution_totals"] {
                _ = try await time("CREATE TABLE bench_\(table) AS SELECT * FROM crm.\(table)")
            }
            let checkSeconds = try await time("SELECT crm.refresh_attribution()")
            var differing: Int64 = 0
            for table in ["deal_touches", "attribution_credits", "campaign_influence", "attribution_totals"] {
                differing += try await count("""
                    SELECT count(*)::int8 FROM (
                        (SELECT b::text FROM bench_\(table) b EXCEPT ALL SELECT f::text FROM crm.\(table) f)
                        UNION ALL
                        (SELECT f::text FROM crm.\(table) f EXCEPT ALL SELECT b::text FROM bench_\(table) b)) d
                    """)
            }

            func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
            let typical = median(incremental)
            print("baseline: full refresh (crm.refresh_attribution()) in \(Bench.format(fullSeconds)) s; again after the rounds, \(Bench.format(checkSeconds)) s")
            print("changes:  \(changedPercent)% of the deals per round (amounts, stages, touches) in \(incremental.indices.map { Bench.format(changes[$0]) }.joined(separator: ", ")) s, queueing \(queued.map(String.init).joined(separator: ", ")) deals")
            print("refresh:  incremental (crm.refresh_attribution_pending()) in \(incremental.map { Bench.format($0, 3) }.joined(separator: ", ")) s; median \(Bench.format(typical, 3)) s")
            print("ratio:    \(Bench.format(typical / fullSeconds * 100, 1))% of the full refresh (goal: 5% or less)")
            print("exact:    \(differing) rows differ between the incremental rounds and a full refresh of the same data")
        }
    }
}
