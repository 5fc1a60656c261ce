import AsyncHTTPClient
import CRMSimulator
import CRMSyncApp
import CRMSyncConfig
import CRMSyncCore
import CRMSyncServer
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// One installation, two business units: each workspace sees its own CRM data, costs, touches and
/// ROI, even when both hold the same records, the same e-mail addresses and the same campaign name.
@Suite struct TenancyTests {
    let logger = TestDatabase.logger
    let sim = SyncAgainstSimulatorTests()
    let cli = CommandLineTests()

    func connector(_ name: String, workspace: String, port: Int) throws -> ConnectorConfig {
        let path = "\(TestDatabase.packageRoot)/Mappings/hubspot.yaml"
        var config = ConnectorConfig(
            name: name, kind: .hubspot, baseURL: "http://127.0.0.1:\(port)", token: "sim-token", mappingPath: path,
            mapping: try MappingLoader.load(path: path), requestsPerSecond: 1_000, searchRequestsPerSecond: 1_000, pageSize: 100)
        config.workspace = workspace
        return config
    }

    func event(_ id: String, at: String, _ fields: String) throws -> InboxEvent {
        let body = #"{"type": "form.submitted", "id": "\#(id)", "occurred_at": "\#(at)", "campaign": "webinar", \#(fields)}"#
        return try EngagementEventParser.parse(Data(body.utf8))[0]
    }

    func int(_ client: PostgresClient, _ sql: String) async throws -> Int64 {
        try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger).collect().first!.decode(Int64.self)
    }

    @Test func twoWorkspacesSyncTheSameCRMAndSeeOnlyTheirOwnCostsTouchesAndROI() async throws {
        // Both business units' connectors read the same simulated account: same ids, same e-mails.
        let state = SimulatorState(data: SimulatedDataset.generate(seed: 7, deals: 40, now: Date()), rateLimit: (1_000, 1_000))
        let liveDeals = await state.data.objects["deals"]!.values.filter { !$0.archived }.count
        try await TestDatabase.with { client, url in
            try await sim.withSimulator(state) { port in
                for (name, workspace) in [("emea-hs", "emea"), ("apac-hs", "apac")] {
                    _ = try await sim.sync(try connector(name, workspace: workspace, port: port), client: client)
                }
                // The same connector cannot be re-homed once it holds data.
                await #expect(throws: ConnectorRegistryError.workspaceMoved(connector: "emea-hs", stored: "emea", configured: "apac")) {
                    try await ConnectorRegistry().register(
                        [.init(name: "emea-hs", kind: "hubspot", baseURL: "http://127.0.0.1:\(port)", workspace: "apac")],
                        client: client, logger: logger)
                }
            }

            let perWorkspace = try await client.query(
                "SELECT workspace, count(*)::int8 FROM reporting.deals WHERE NOT deleted GROUP BY 1 ORDER BY 1", logger: logger
            ).collect().map { try $0.decode((String, Int64).self) }
            #expect(perWorkspace.map(\.0) == ["apac", "emea"] && perWorkspace.allSatisfy { $0.1 == Int64(liveDeals) }, "\(perWorkspace)")
            for table in ["deals", "contacts", "stage_history", "deal_contacts", "sync_cursors", "sync_runs", "owners"] {
                let strays = try await int(client, """
                    SELECT count(*)::int8 FROM crm.\(table) x JOIN crm.connectors c ON c.name = x.connector
                     WHERE x.workspace <> c.workspace
                    """)
                #expect(strays == 0, "crm.\(table) has rows outside their connector's workspace")
            }

            // A won deal and one of its contacts with an e-mail: present in both workspaces.
            let picked = try await client.query(
                """
                SELECT d.external_id, c.external_id, c.email, upper(d.currency),
                       to_char(d.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                  FROM crm.deals d
                  JOIN crm.deal_contacts dc ON dc.connector = d.connector AND dc.deal_external_id = d.external_id
                  JOIN crm.contacts c ON c.connector = d.connector AND c.external_id = dc.contact_external_id
                 WHERE d.connector = 'emea-hs' AND d.is_won AND NOT d.deleted AND d.amount > 0 AND c.email IS NOT NULL
                   AND d.created_at <= coalesce(d.closed_at, d.modified_at)
                 ORDER BY d.external_id LIMIT 1
                """, logger: logger
            ).collect()
            let (dealID, contactID, email, currency, at) = try #require(try picked.first?.decode((String, String, String, String, String).self))

            // The same campaign name costs each business unit its own amount.
            try await CostStore().importLines([CostLine(campaign: "webinar", category: "content", amount: 1_000, currency: currency, period: "2026-10")],
                                              workspace: "emea", client: client, logger: logger)
            try await CostStore().importLines([CostLine(campaign: "webinar", category: "content", amount: 5_000, currency: currency, period: "2026-10")],
                                              workspace: "apac", client: client, logger: logger)

            // An address only the other business unit knows.
            try await client.query(
                "UPDATE crm.contacts SET email = 'only-apac@example.com' WHERE connector = 'apac-hs' AND external_id = \(contactID)",
                logger: logger)
            try await DirectInboxWriter(client: client, logger: logger).store(source: "events", events: [
                // e-mail only: resolved inside emea, although apac has a contact with that address too
                try event("e1", at: at, #""workspace": "emea", "contact": {"email": "\#(email)"}"#),
                // a CRM kind as the prefix is ambiguous with two HubSpot connectors, not within apac
                try event("e2", at: at, #""workspace": "apac", "contact": {"external_id": "hubspot:\#(contactID)"}"#),
                // stays unresolved in emea: apac's contact is not emea's
                try event("e5", at: at, #""workspace": "emea", "contact": {"email": "only-apac@example.com"}"#),
                try event("e3", at: at, #""workspace": "nowhere", "contact": {"email": "\#(email)"}"#),
                try event("e4", at: at, #""workspace": "apac", "contact": {"external_id": "emea-hs:\#(contactID)"}"#),
            ])
            let outcome = try await InboxProcessor(client: client, logger: logger).drain()
            #expect(outcome == .init(applied: 3, deadLettered: 2))
            let reasons = try await client.query("SELECT reason FROM crm.dead_letters ORDER BY inbox_id", logger: logger)
                .collect().map { try $0.decode(String.self) }
            #expect(reasons == ["workspace nowhere is not configured",
                                "contact external_id names connector emea-hs of workspace emea, but the event is for workspace apac"])

            // The queue records where each event turned out to belong (nowhere known: NULL).
            let placed = try await client.query(
                "SELECT delivery_id, coalesce(workspace, '-') FROM crm.inbox ORDER BY delivery_id", logger: logger
            ).collect().map { try $0.decode((String, String).self) }
            #expect(placed.map { "\($0.0):\($0.1)" } == ["e1:emea", "e2:apac", "e3:-", "e4:emea", "e5:emea"])
            #expect(try await int(client, "SELECT count(*)::int8 FROM crm.dead_letters WHERE workspace IS NULL") == 1)

            try await ReportReader().refreshAttribution(grossMargin: 0.5, lookbackDays: 90, halfLifeDays: 7, client: client, logger: logger)
            let touches = try await client.query(
                "SELECT touch_key, connector, workspace FROM crm.touches WHERE source = 'events' ORDER BY touch_key", logger: logger
            ).collect().map { try $0.decode((String, String?, String).self) }
            #expect(touches.map { "\($0.0) \($0.1 ?? "-") \($0.2)" } == ["events:e1 emea-hs emea", "events:e2 apac-hs apac", "events:e5 - emea"])
            let linked = try await client.query(
                "SELECT DISTINCT workspace, connector FROM crm.deal_touches WHERE deal_external_id = \(dealID) ORDER BY 1", logger: logger
            ).collect().map { try $0.decode((String, String).self) }
            #expect(linked.map { "\($0.0)/\($0.1)" } == ["apac/apac-hs", "emea/emea-hs"])

            // One ROI row per workspace, each with its own cost; the two never add up.
            let emea = try await ReportReader().roi(model: "linear", workspace: "emea", client: client, logger: logger)
            let apac = try await ReportReader().roi(model: "linear", workspace: "apac", client: client, logger: logger)
            let e = try #require(emea.first { $0.campaign == "webinar" })
            let a = try #require(apac.first { $0.campaign == "webinar" })
            #expect(emea.count == 1 && apac.count == 1)
            #expect(Decimal(string: e.cost) == 1_000 && Decimal(string: a.cost) == 5_000)
            #expect(e.wonDeals >= 1 && e.attributedRevenue == a.attributedRevenue, "the same deal, credited in each unit")
            let profit = try #require(Decimal(string: e.attributedGrossProfit))
            #expect(e.attributedGrossProfit == a.attributedGrossProfit)
            #expect(Decimal(string: e.roi ?? "") == roi(profit, cost: 1_000))
            #expect(Decimal(string: a.roi ?? "") == roi(profit, cost: 5_000))
            #expect(try await int(client, "SELECT count(DISTINCT workspace)::int8 FROM reporting.roi_by_campaign WHERE campaign = 'webinar'") == 2)

            // The command line reads one workspace, or all of them with the workspace shown.
            let env = ["DATABASE_URL": TestDatabase.text(url)]
            let csv = try await cli.run(["report", "roi", "--model", "linear", "--workspace", "apac", "--format", "csv"], environment: env)
            #expect(csv.status == 0, "\(csv.stderr)")
            let lines = csv.stdout.split(separator: "\n").map(String.init)
            #expect(lines.first?.hasSuffix(",roi,workspace") == true && lines.count == 2 && lines[1].hasPrefix("linear,webinar,\(currency),5000,"),
                    "\(csv.stdout)")
            #expect(lines.last?.hasSuffix(",apac") == true)
            let table = try await cli.run(["report", "roi", "--model", "linear"], environment: env)
            #expect(table.stdout.hasPrefix("workspace") && table.stdout.contains("emea") && table.stdout.contains("apac"), "\(table.stdout)")
            let page = FileManager.default.temporaryDirectory.appendingPathComponent("tenancy-\(UUID().uuidString).html").path
            defer { try? FileManager.default.removeItem(atPath: page) }
            let html = try await cli.run(["report", "html", "--out", page, "--workspace", "emea"], environment: env)
            #expect(html.status == 0, "\(html.stderr)")
            let text = try String(contentsOfFile: page, encoding: .utf8)
            #expect(text.contains("<title>crm-sync: marketing programme report, workspace emea</title>") && text.contains("webinar"))
            let bad = try await cli.run(["costs", "import", "/dev/null", "--workspace", "Sales EMEA"], environment: env)
            #expect(bad.status != 0 && bad.stderr.contains("--workspace: 'Sales EMEA' is not a workspace name"), "\(bad.stderr)")
        }
    }

    /// (gross profit − cost) ÷ cost, rounded as the view rounds it.
    func roi(_ profit: Decimal, cost: Decimal) -> Decimal {
        var exact = (profit - cost) / cost
        var rounded = Decimal()
        NSDecimalRound(&rounded, &exact, 6, .plain)
        return rounded
    }

    @Test func anEventNamingAMalformedWorkspaceIsRejectedAtTheDoor() throws {
        let body = #"{"type": "email.opened", "id": "x1", "occurred_at": "2026-10-01T00:00:00Z", "contact": {"email": "a@b.c"}, "workspace": "Sales EMEA"}"#
        #expect(throws: EngagementEventParser.ParseError.self) { try EngagementEventParser.parse(Data(body.utf8)) }
        let ok = #"{"type": "email.opened", "id": "x1", "occurred_at": "2026-10-01T00:00:00Z", "contact": {"email": "a@b.c"}, "workspace": "emea"}"#
        #expect(try EngagementEventParser.parse(Data(ok.utf8)).count == 1)
    }

    @Test func aConfigRefusesAMalformedWorkspaceWithTheFileAndKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tenancy-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("crm-sync.yaml").path
        try """
        connectors:
          - name: hs
            kind: hubspot
            base_url: http://127.0.0.1:9
            token_env: T
            mapping: \(TestDatabase.packageRoot)/Mappings/hubspot.yaml
            workspace: Sales EMEA
        """.write(toFile: file, atomically: true, encoding: .utf8)
        #expect {
            try ConfigLoader.load(path: file, environment: ["T": "x"])
        } throws: { error in
            let text = "\(error)"
            return text.contains(file) && text.contains("workspace") && text.contains("'Sales EMEA' is not a workspace name")
        }
    }
}
