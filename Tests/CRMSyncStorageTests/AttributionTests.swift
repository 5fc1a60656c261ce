import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// Attribution through the real database: the SQL in sql/002_marketing.sql computes the credits.
@Suite struct AttributionTests {
    static let models = ["first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay"]
    let logger = TestDatabase.logger

    func date(_ text: String) -> Date { CRMTimestamp.parse(text)! }

    func insertDeal(_ client: PostgresClient, id: String, amount: String, currency: String, won: Bool, created: String, closed: String?, contact: String) async throws {
        try await client.query(
            """
            INSERT INTO crm.deals (connector, external_id, amount, currency, stage, canonical_stage, created_at, closed_at,
                                   is_closed, is_won, modified_at)
            VALUES ('hs', \(id), \(amount)::numeric, \(currency), \(won ? "closedwon" : "appointmentscheduled"),
                    \(won ? "closed_won" : "sql"), \(date(created)), \(closed.map(date)), \(closed != nil), \(won), now())
            """, logger: logger)
        try await client.query("INSERT INTO crm.deal_contacts VALUES ('hs', \(id), \(contact))", logger: logger)
    }

    func insertTouch(_ client: PostgresClient, key: String, contact: String, campaign: String, at: String) async throws {
        try await client.query(
            """
            INSERT INTO crm.touches (touch_key, connector, contact_external_id, campaign, kind, occurred_at)
            VALUES (\(key), 'hs', \(contact), \(campaign), 'email.clicked', \(date(at)))
            """, logger: logger)
    }

    func refresh(_ client: PostgresClient, margin: Decimal = 0.5) async throws {
        try await ReportReader().refreshAttribution(grossMargin: margin, lookbackDays: 90, halfLifeDays: 7, client: client, logger: logger)
    }

    /// The source article's example: 100,000 JPY, 10 deals, 2 won for 2,000,000 JPY, 50% margin → 900%.
    @Test func theArticlesWorkedExampleIs900PercentUnderEveryModel() async throws {
        try await TestDatabase.with { client, _ in
            try await CostStore().importLines(
                [CostLine(campaign: "wp-2026-q4", category: "content", amount: 70_000, currency: "JPY", period: "2026-10"),
                 CostLine(campaign: "wp-2026-q4", category: "tool", amount: 30_000, currency: "JPY", period: "2026-10")],
                client: client, logger: logger)
            for i in 1...10 {
                let won = i <= 2
                try await insertDeal(client, id: "d\(i)", amount: won ? (i == 1 ? "1200000" : "800000") : "500000", currency: "JPY",
                                     won: won, created: "2026-10-10T00:00:00Z", closed: won ? "2026-11-01T00:00:00Z" : nil, contact: "c\(i)")
                try await insertTouch(client, key: "t\(i)a", contact: "c\(i)", campaign: "wp-2026-q4", at: "2026-10-01T00:00:00Z")
                try await insertTouch(client, key: "t\(i)b", contact: "c\(i)", campaign: "wp-2026-q4", at: "2026-10-05T09:00:00Z")
            }
            try await refresh(client)
            let rows = try await ReportReader().roi(model: nil, client: client, logger: logger)
            #expect(rows.map(\.model).sorted() == Self.models.sorted())
            for row in rows {
                #expect(row.campaign == "wp-2026-q4")
                #expect(row.currency == "JPY")
                #expect(Decimal(string: row.cost) == 100_000)
                #expect(row.influencedDeals == 10)
                #expect(row.wonDeals == 2)
                #expect(Decimal(string: row.attributedRevenue) == 2_000_000)
                #expect(Decimal(string: row.attributedGrossProfit) == 1_000_000)
                #expect(Decimal(string: row.roi ?? "") == 9, "model \(row.model)")
            }
        }
    }

    /// Four touches on one deal of 1,000.00 USD created 2026-02-01, closed 2026-03-01:
    /// A (X) 01-20, B (Y) 02-01 = nearest the creation, C (Z) 02-15, D (X) 02-22.
    @Test func aHandComputedMultiTouchFixture() async throws {
        try await TestDatabase.with { client, _ in
            try await insertDeal(client, id: "d1", amount: "1000.00", currency: "USD", won: true,
                                 created: "2026-02-01T00:00:00Z", closed: "2026-03-01T00:00:00Z", contact: "c1")
            try await insertTouch(client, key: "A", contact: "c1", campaign: "X", at: "2026-01-20T00:00:00Z")
            try await insertTouch(client, key: "B", contact: "c1", campaign: "Y", at: "2026-02-01T00:00:00Z")
            try await insertTouch(client, key: "C", contact: "c1", campaign: "Z", at: "2026-02-15T00:00:00Z")
            try await insertTouch(client, key: "D", contact: "c1", campaign: "X", at: "2026-02-22T00:00:00Z")
            // Outside the window (look-back 90 days before creation; nothing after the close).
            try await insertTouch(client, key: "old", contact: "c1", campaign: "X", at: "2025-10-01T00:00:00Z")
            try await insertTouch(client, key: "late", contact: "c1", campaign: "Y", at: "2026-03-02T00:00:00Z")
            try await refresh(client)
            let expected: [String: [String: Decimal]] = [
                "first_touch": ["A": 1000],
                "last_touch": ["D": 1000],
                "linear": ["A": 250, "B": 250, "C": 250, "D": 250],
                "u_shaped": ["A": 400, "B": 100, "C": 100, "D": 400],
                "w_shaped": ["A": 300, "B": 300, "C": 100, "D": 300],
                // 2^(-age/7) for ages 40, 28, 14 and 7 days, normalised, to the cent by largest remainder.
                "time_decay": ["A": Decimal(string: "22.91")!, "B": Decimal(string: "75.16")!, "C": Decimal(string: "300.64")!, "D": Decimal(string: "601.29")!],
            ]
            for (model, credits) in expected {
                let rows = try await client.query(
                    """
                    SELECT t.touch_key, c.credit::text FROM crm.attribution_credits c JOIN crm.touches t ON t.id = c.touch_id
                     WHERE c.model = \(model) ORDER BY t.touch_key
                    """, logger: logger
                ).collect()
                var actual: [String: Decimal] = [:]
                for row in rows {
                    let (key, credit) = try row.decode((String, String).self)
                    actual[key] = Decimal(string: credit)
                }
                #expect(actual == credits, "model \(model)")
            }
        }
    }

    /// For random deals and touches, every model's credits per won deal add up to the amount exactly.
    @Test(arguments: [11, 23, 37])
    func creditsAlwaysSumToTheDealAmount(seed: Int) async throws {
        try await TestDatabase.with { client, _ in
            var generator = SplitMix(seed: UInt64(seed))
            let currencies = ["JPY", "USD", "KWD", "EUR"]
            for deal in 0..<40 {
                let currency = currencies[Int(generator.next() % 4)]
                let minor = ["JPY": 0, "USD": 2, "KWD": 3, "EUR": 2][currency]!
                let units = 1 + Int(generator.next() % 5_000_000)
                var amount = Decimal(units)
                for _ in 0..<minor { amount /= 10 }
                try await insertDeal(client, id: "d\(deal)", amount: "\(amount)", currency: currency, won: generator.next() % 3 != 0,
                                     created: "2026-05-01T00:00:00Z", closed: "2026-06-01T00:00:00Z", contact: "c\(deal)")
                for touch in 0..<Int(generator.next() % 12) {
                    let day = 1 + Int(generator.next() % 28)
                    let month = generator.next() % 2 == 0 ? "04" : "05"
                    try await insertTouch(client, key: "t\(deal)-\(touch)", contact: "c\(deal)", campaign: "camp\(generator.next() % 5)",
                                          at: "2026-\(month)-\(day < 10 ? "0" : "")\(day)T0\(generator.next() % 10):00:00Z")
                }
            }
            try await refresh(client)
            let mismatches = try await client.query(
                """
                SELECT c.model, d.external_id FROM crm.attribution_credits c
                  JOIN crm.deals d ON d.connector = c.connector AND d.external_id = c.deal_external_id
                 GROUP BY c.model, d.external_id, d.amount HAVING sum(c.credit) <> d.amount OR min(c.credit) < 0
                """, logger: logger
            ).collect()
            #expect(mismatches.isEmpty)
            let missingModels = try await client.query(
                """
                SELECT d.external_id FROM crm.deals d
                 WHERE d.is_won AND EXISTS (SELECT 1 FROM crm.deal_touches t WHERE t.deal_external_id = d.external_id)
                   AND (SELECT count(DISTINCT model) FROM crm.attribution_credits c WHERE c.deal_external_id = d.external_id) <> 6
                """, logger: logger
            ).collect()
            #expect(missingModels.isEmpty)
            // Won deals with no touch are reported as unattributed, never dropped.
            let unattributed = try await client.query(
                """
                SELECT (SELECT count(*) FROM reporting.unattributed_won_deals)::int8,
                       (SELECT count(*) FROM crm.deals d WHERE d.is_won
                          AND NOT EXISTS (SELECT 1 FROM crm.deal_touches t WHERE t.deal_external_id = d.external_id))::int8
                """, logger: logger
            ).collect().first!.decode((Int64, Int64).self)
            #expect(unattributed.0 == unattributed.1)
        }
    }
}

struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
