import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// The incremental attribution refresh (sql/110_incremental_attribution.sql) against the full one:
/// after any mix of writes, recomputing only the queued deals must leave exactly the rows a full
/// refresh leaves, byte for byte.
@Suite struct IncrementalAttributionTests {
    let logger = TestDatabase.logger
    static let connectors = ["hs", "eu"]  // workspaces default and emea
    static let currencies = ["JPY", "USD", "KWD", "EUR", "usd"]
    static let campaigns = ["wp", "webinar", "tradeshow", "pricing", "WP"]
    static let base = Date(timeIntervalSince1970: 1_780_000_000)  // 2026-05-28

    func at(_ generator: inout SplitMix, days: ClosedRange<Int>) -> Date {
        let day = days.lowerBound + Int(generator.next() % UInt64(days.count))
        return Self.base.addingTimeInterval(Double(day) * 86_400 + Double(generator.next() % 86_400))
    }

    func amount(_ generator: inout SplitMix) -> String {
        // Whole, cent and sub-unit amounts: the last keeps sub-unit precision with one touch.
        let units = 1 + generator.next() % 3_000_000
        switch generator.next() % 4 {
        case 0: return "\(units)"
        case 1: return "\(units / 100).\(String(format: "%02d", units % 100))"
        case 2: return "\(units / 1000).\(String(format: "%03d", units % 1000))5"
        default: return "\(units % 7)"
        }
    }

    func setUp(_ client: PostgresClient) async throws {
        try await client.query("INSERT INTO crm.workspaces (name) VALUES ('emea')", logger: logger)
        try await client.query(
            """
            INSERT INTO crm.connectors (name, kind, base_url, workspace)
            VALUES ('hs', 'hubspot', 'http://hs', 'default'), ('eu', 'hubspot', 'http://eu', 'emea')
            """, logger: logger)
        for connector in Self.connectors {
            try await client.query(
                """
                INSERT INTO crm.contacts (connector, external_id, email, modified_at)
                SELECT \(connector), 'c' || c, \(connector) || '-c' || c || '@example.com', now() FROM generate_series(0, 19) c
                """, logger: logger)
        }
    }

    func insertDeal(_ client: PostgresClient, _ g: inout SplitMix, connector: String, id: String) async throws {
        let won = g.next() % 2 == 0
        let closed = won || g.next() % 3 == 0
        let created = at(&g, days: -60...0)
        let closedAt: Date? = closed && g.next() % 5 != 0 ? created.addingTimeInterval(Double(1 + g.next() % 40) * 86_400) : nil
        let currency: String? = g.next() % 10 == 0 ? nil : Self.currencies[Int(g.next() % UInt64(Self.currencies.count))]
        let margin: String? = g.next() % 4 == 0 ? "0.\(g.next() % 90 + 10)" : nil
        try await client.query(
            """
            INSERT INTO crm.deals (connector, external_id, amount, currency, stage, canonical_stage, created_at, closed_at,
                                   is_closed, is_won, gross_margin, modified_at)
            VALUES (\(connector), \(id), \(amount(&g))::numeric, \(currency), \(won ? "closedwon" : "open"),
                    \(won ? "closed_won" : "sql"), \(created), \(closedAt), \(closed), \(won), \(margin)::numeric, \(at(&g, days: 0...5)))
            """, logger: logger)
        for _ in 0...Int(g.next() % 2) {
            try await client.query(
                "INSERT INTO crm.deal_contacts VALUES (\(connector), \(id), \("c\(g.next() % 20)")) ON CONFLICT DO NOTHING",
                logger: logger)
        }
    }

    func insertTouch(_ client: PostgresClient, _ g: inout SplitMix, key: String) async throws {
        let connector = Self.connectors[Int(g.next() % 2)]
        let contact = "c\(g.next() % 20)"
        let campaign: String? = g.next() % 12 == 0 ? nil : Self.campaigns[Int(g.next() % UInt64(Self.campaigns.count))]
        if g.next() % 6 == 0 {
            // Arrives before its contact is known: matched by e-mail at the next refresh (or never).
            let email = g.next() % 2 == 0 ? "\(connector)-\(contact)@example.com" : "stranger\(g.next() % 5)@example.com"
            try await client.query(
                """
                INSERT INTO crm.touches (touch_key, email, campaign, kind, occurred_at, workspace)
                VALUES (\(key), \(email.uppercased()), \(campaign), 'email.clicked', \(at(&g, days: -120...40)),
                        \(connector == "hs" ? "default" : "emea"))
                """, logger: logger)
        } else {
            try await client.query(
                """
                INSERT INTO crm.touches (touch_key, connector, contact_external_id, campaign, kind, occurred_at)
                VALUES (\(key), \(connector), \(contact), \(campaign), 'form.submitted', \(at(&g, days: -120...40)))
                """, logger: logger)
        }
    }

    /// One random write of the kinds a sync, the inbox or an operator makes.
    func mutate(_ client: PostgresClient, _ g: inout SplitMix, serial: Int) async throws {
        let connector = Self.connectors[Int(g.next() % 2)]
        let deal = "d\(g.next() % 30)"
        switch g.next() % 16 {
        case 0:
            try await client.query(
                "UPDATE crm.deals SET amount = \(amount(&g))::numeric WHERE connector = \(connector) AND external_id = \(deal)",
                logger: logger)
        case 1:  // stage: won, lost or reopened
            let won = g.next() % 2 == 0, closed = won || g.next() % 2 == 0
            try await client.query(
                """
                UPDATE crm.deals SET is_won = \(won), is_closed = \(closed), stage = \(won ? "closedwon" : "open"),
                       closed_at = CASE WHEN \(closed) THEN created_at + \(Int(g.next() % 50)) * interval '1 day' END,
                       modified_at = modified_at + interval '1 hour'
                 WHERE connector = \(connector) AND external_id = \(deal)
                """, logger: logger)
        case 2:
            let currency: String? = g.next() % 5 == 0 ? nil : Self.currencies[Int(g.next() % UInt64(Self.currencies.count))]
            try await client.query(
                "UPDATE crm.deals SET currency = \(currency) WHERE connector = \(connector) AND external_id = \(deal)", logger: logger)
        case 3:
            let margin: String? = g.next() % 2 == 0 ? nil : "0.\(g.next() % 90 + 10)"
            try await client.query(
                "UPDATE crm.deals SET gross_margin = \(margin)::numeric WHERE connector = \(connector) AND external_id = \(deal)",
                logger: logger)
        case 4:
            try await client.query(
                "UPDATE crm.deals SET deleted = NOT deleted WHERE connector = \(connector) AND external_id = \(deal)", logger: logger)
        case 5:
            try await client.query("DELETE FROM crm.deals WHERE connector = \(connector) AND external_id = \(deal)", logger: logger)
        case 6:
            try await client.query("DELETE FROM crm.deals WHERE connector = \(connector) AND external_id = \(deal)", logger: logger)
            try await insertDeal(client, &g, connector: connector, id: deal)
        case 7:
            try await client.query(
                "INSERT INTO crm.deal_contacts VALUES (\(connector), \(deal), \("c\(g.next() % 20)")) ON CONFLICT DO NOTHING",
                logger: logger)
        case 8:
            // As the sync writes links: the page's deals lose theirs, then get them back (one statement each).
            try await client.query(
                "DELETE FROM crm.deal_contacts WHERE connector = \(connector) AND deal_external_id = ANY(\(["d1", "d2", deal]))",
                logger: logger)
            try await client.query(
                """
                INSERT INTO crm.deal_contacts SELECT \(connector), d, 'c' || ((\(Int(g.next() % 20)) + n) % 20)
                  FROM unnest(\(["d1", "d2"])::text[]) d, generate_series(0, 1) n ON CONFLICT DO NOTHING
                """, logger: logger)
        case 9:
            try await client.query(
                "INSERT INTO crm.deal_accounts VALUES (\(connector), \(deal), 'a1') ON CONFLICT DO NOTHING", logger: logger)
        case 10, 11:
            try await insertTouch(client, &g, key: "t\(serial)")
        case 12:
            try await client.query(
                """
                UPDATE crm.touches SET occurred_at = occurred_at + \(Int(g.next() % 30) - 15) * interval '1 day'
                 WHERE id IN (SELECT id FROM crm.touches ORDER BY id OFFSET \(Int(g.next() % 40)) LIMIT 3)
                """, logger: logger)
        case 13:
            let campaign = Self.campaigns[Int(g.next() % UInt64(Self.campaigns.count))]
            try await client.query(
                """
                UPDATE crm.touches SET campaign = \(campaign), contact_external_id = \("c\(g.next() % 20)")
                 WHERE id = (SELECT id FROM crm.touches WHERE contact_external_id IS NOT NULL ORDER BY id OFFSET \(Int(g.next() % 40)) LIMIT 1)
                """, logger: logger)
        case 14:
            try await client.query(
                "DELETE FROM crm.touches WHERE id = (SELECT id FROM crm.touches ORDER BY id OFFSET \(Int(g.next() % 60)) LIMIT 1)",
                logger: logger)
        default:
            // A bulk statement over many deals at once, like a sync page's upsert.
            try await client.query(
                """
                UPDATE crm.deals SET amount = amount + 1, modified_at = modified_at + interval '1 second'
                 WHERE connector = \(connector) AND external_id LIKE \("d\(g.next() % 3)%")
                """, logger: logger)
        }
    }

    /// Every row of the derived tables, as text in a fixed order: equal snapshots are equal tables,
    /// scale of the numerics included.
    static let snapshotSQL = """
        SELECT (SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM crm.deal_touches x),
               (SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM crm.attribution_credits x),
               (SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM crm.campaign_influence x),
               (SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM crm.attribution_totals x),
               (SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM reporting.roi_by_campaign x)
        """

    struct Snapshot: Equatable {
        var links: String, credits: String, influence: String, totals: String, roi: String
    }

    func snapshot(_ connection: PostgresConnection) async throws -> Snapshot {
        let row = try await connection.query(PostgresQuery(unsafeSQL: Self.snapshotSQL), logger: logger).collect().first!
        let (links, credits, influence, totals, roi) = try row.decode((String, String, String, String, String).self)
        return Snapshot(links: links, credits: credits, influence: influence, totals: totals, roi: roi)
    }

    /// What the tables hold now, and what a full refresh would make of the same data (computed in a
    /// transaction that is rolled back, so the incremental chain goes on undisturbed).
    func currentAndFull(_ client: PostgresClient) async throws -> (Snapshot, Snapshot) {
        try await client.withConnection { connection in
            let current = try await snapshot(connection)
            try await connection.query("BEGIN", logger: logger)
            try await connection.query("SELECT crm.refresh_attribution()", logger: logger)
            let full = try await snapshot(connection)
            try await connection.query("ROLLBACK", logger: logger)
            return (current, full)
        }
    }

    func expectSame(_ current: Snapshot, _ full: Snapshot, _ context: String) {
        #expect(current.links == full.links, "deal_touches, \(context)")
        #expect(current.credits == full.credits, "attribution_credits, \(context)")
        #expect(current.influence == full.influence, "campaign_influence, \(context)")
        #expect(current.totals == full.totals, "attribution_totals, \(context)")
        #expect(current.roi == full.roi, "roi_by_campaign, \(context)")
    }

    func pending(_ client: PostgresClient) async throws -> [String: Int] {
        let status = try await ReportReader().attributionStatus(client: client, logger: logger)
        return Dictionary(uniqueKeysWithValues: status.map { ($0.workspace, $0.pendingDeals) })
    }

    func count(_ client: PostgresClient, _ sql: String) async throws -> Int {
        Int(try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect().first!.decode(Int64.self))
    }

    func populate(_ client: PostgresClient, _ g: inout SplitMix) async throws {
        try await setUp(client)
        for connector in Self.connectors {
            for deal in 0..<30 { try await insertDeal(client, &g, connector: connector, id: "d\(deal)") }
        }
        for touch in 0..<160 { try await insertTouch(client, &g, key: "t-init-\(touch)") }
    }

    /// Random inserts, updates and deletes of deals, stages, amounts, currencies, margins, links and
    /// touches, in rounds; after each round the incremental refresh leaves exactly the full refresh's
    /// rows, and recomputed only some of the deals.
    @Test(arguments: [3, 17, 29, 41])
    func incrementalEqualsFullAfterRandomChanges(seed: Int) async throws {
        try await TestDatabase.with { client, _ in
            var g = SplitMix(seed: UInt64(seed))
            try await populate(client, &g)
            // Whatever the queue holds after migrating and loading, the first refresh is a full one.
            let first = try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
            #expect(first == (try await count(client, "SELECT count(*)::int8 FROM crm.deals")))
            #expect(try await pending(client) == ["default": 0, "emea": 0])
            var serial = 0
            for round in 0..<12 {
                for _ in 0..<(1 + Int(g.next() % 6)) {
                    serial += 1
                    try await mutate(client, &g, serial: serial)
                }
                let refreshed = try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
                let deals = try await count(client, "SELECT count(*)::int8 FROM crm.deals")
                #expect(refreshed < deals, "round \(round): an incremental refresh, not a full one")
                #expect(try await pending(client) == ["default": 0, "emea": 0])
                let (current, full) = try await currentAndFull(client)
                expectSame(current, full, "seed \(seed), round \(round)")
                #expect(!full.credits.isEmpty && !full.totals.isEmpty, "the fixture attributes something")
            }
        }
    }

    /// Settings, models and currencies concern every deal: a change queues a full refresh, which the
    /// incremental call then runs; the status says every deal is pending until then.
    @Test func aSettingsOrModelChangeMakesTheNextRefreshAFullOne() async throws {
        try await TestDatabase.with { client, _ in
            var g = SplitMix(seed: 7)
            try await populate(client, &g)
            try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
            let deals = try await count(client, "SELECT count(*)::int8 FROM crm.deals")
            let perWorkspace = ["default": 30, "emea": 30]

            // Pushing the same settings (what every `report roi` does) changes nothing.
            try await ReportReader().refreshAttribution(grossMargin: 0.5, lookbackDays: 90, halfLifeDays: 7, full: false,
                                                        client: client, logger: logger)
            #expect(try await pending(client) == ["default": 0, "emea": 0])

            for change in [
                "UPDATE crm.attribution_settings SET lookback_days = 30",
                "UPDATE crm.attribution_settings SET gross_margin = 0.35",
                "UPDATE crm.attribution_models SET first_weight = 0.5 WHERE model = 'u_shaped'",
                "UPDATE crm.currencies SET minor_units = 3 WHERE code = 'USD'",
                "TRUNCATE crm.deal_accounts",
            ] {
                try await client.query(PostgresQuery(unsafeSQL: change), logger: logger)
                #expect(try await pending(client) == perWorkspace, "\(change)")
                #expect(try await ReportReader().refreshPendingAttribution(client: client, logger: logger) == deals, "\(change)")
                let (current, full) = try await currentAndFull(client)
                expectSame(current, full, change)
            }
            // refreshed_at moves only with a refresh.
            try await client.query("UPDATE crm.attribution_settings SET refreshed_at = now() - interval '1 day'", logger: logger)
            #expect(try await pending(client) == ["default": 0, "emea": 0])
        }
    }

    /// A deal queued by a transaction that commits while a refresh runs is not lost: the refresh
    /// deletes only the queue rows its snapshot saw.
    @Test func aDealQueuedDuringARefreshStaysQueued() async throws {
        try await TestDatabase.with { client, _ in
            var g = SplitMix(seed: 11)
            try await populate(client, &g)
            try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
            // A won deal with credits in each workspace.
            func creditedDeal(_ connector: String) async throws -> String {
                try await client.query(
                    "SELECT min(deal_external_id) FROM crm.attribution_credits WHERE connector = \(connector) AND credit > 0",
                    logger: logger
                ).collect().first!.decode(String.self)
            }
            let early = try await creditedDeal("hs"), late = try await creditedDeal("eu")
            try await client.query(
                "UPDATE crm.deals SET amount = amount + 10 WHERE connector = 'hs' AND external_id = \(early)", logger: logger)
            try await client.withConnection { refresher in
                try await refresher.query("BEGIN", logger: logger)
                let taken = try await refresher.query("SELECT crm.refresh_attribution_pending()", logger: logger)
                    .collect().first!.decode(Int64.self)
                #expect(taken == 1)
                // Another writer commits while the refresh's transaction is open.
                try await client.query(
                    "UPDATE crm.deals SET amount = amount + 10 WHERE connector = 'eu' AND external_id = \(late)", logger: logger)
                try await refresher.query("COMMIT", logger: logger)
            }
            #expect(try await pending(client) == ["default": 0, "emea": 1])
            let (stale, fullBefore) = try await currentAndFull(client)
            #expect(stale.credits != fullBefore.credits, "the late change is not in the figures yet")
            #expect(try await ReportReader().refreshPendingAttribution(client: client, logger: logger) == 1)
            #expect(try await pending(client) == ["default": 0, "emea": 0])
            let (current, full) = try await currentAndFull(client)
            expectSame(current, full, "after the late changes")
        }
    }

    /// Two refreshes at once (two replicas, a sync beside the inbox worker) take turns: the second
    /// waits for the first's advisory lock, then recomputes only what is left.
    @Test func concurrentRefreshesTakeTurns() async throws {
        try await TestDatabase.with { client, _ in
            var g = SplitMix(seed: 13)
            try await populate(client, &g)
            try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
            try await client.query("UPDATE crm.deals SET amount = amount + 1 WHERE connector = 'hs'", logger: logger)
            try await client.withConnection { first in
                try await first.query("BEGIN", logger: logger)
                #expect(try await first.query("SELECT crm.refresh_attribution_pending()", logger: logger)
                    .collect().first!.decode(Int64.self) == 30)
                let second = Task { try await ReportReader().refreshPendingAttribution(client: client, logger: logger) }
                let waiting = try await eventually {
                    try await count(client, """
                        SELECT count(*)::int8 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
                         WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database()
                        """) == 1
                }
                #expect(waiting, "the second refresh waits for the first")
                try await first.query("COMMIT", logger: logger)
                #expect(try await second.value == 0, "nothing was left for the second")
            }
            let (current, full) = try await currentAndFull(client)
            expectSame(current, full, "after two refreshes at once")
        }
    }

    /// `report roi` (settings pushed, then a refresh) beside syncs and inbox passes (refresh only),
    /// on several connections at once: they queue on one lock instead of deadlocking on the
    /// settings row the refreshes stamp.
    @Test func refreshesWithAndWithoutASettingsPushNeverDeadlock() async throws {
        try await TestDatabase.with { client, _ in
            var g = SplitMix(seed: 19)
            try await populate(client, &g)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for worker in 0..<6 {
                    group.addTask {
                        for round in 0..<6 {
                            try await client.query(
                                "UPDATE crm.deals SET amount = amount + 1 WHERE external_id = \("d\((worker * 5 + round) % 30)")",
                                logger: logger)
                            if (worker + round) % 2 == 0 {
                                try await ReportReader().refreshAttribution(
                                    grossMargin: round % 3 == 0 ? 0.4 : 0.5, lookbackDays: 90, halfLifeDays: 7, full: false,
                                    client: client, logger: logger)
                            } else {
                                try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
            #expect(try await pending(client) == ["default": 0, "emea": 0])
            let (current, full) = try await currentAndFull(client)
            expectSame(current, full, "after refreshes at once")
        }
    }
}
