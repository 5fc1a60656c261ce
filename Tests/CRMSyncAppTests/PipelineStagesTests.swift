import CRMSimulator
import CRMSyncTestSupport
import Foundation
import PostgresNIO
import Testing

/// The CRM's pipelines and stages are synced with their canonical stage, so a stage someone adds
/// in the CRM is reported as unmapped before the first deal moves into it.
@Suite struct PipelineStagesTests {
    let support = SyncAgainstSimulatorTests()

    @Test func aNewStageNoMappingNamesIsReportedBeforeAnyDealUsesIt() async throws {
        var data = SimulatedDataset.generate(seed: 12, deals: 200, now: Date())
        data.pipelineStages.append("legalreview")
        let stageCount = data.pipelineStages.count
        let state = SimulatorState(data: data, seed: 12, rateLimit: (2_000, 1_000))
        try await TestDatabase.with { client, _ in
            try await support.withSimulator(state) { port in
                let summary = try await support.sync(try support.connectorConfig(port: port, rate: 1_500, searchRate: 800), client: client)
                #expect(summary.unmappedStages == ["legalreview"])
            }
            var canonical: [String: String?] = [:]
            for try await (stage, mapped, salesOwned) in try await client.query(
                "SELECT stage, canonical_stage, sales_owned FROM reporting.pipeline_stages WHERE connector = 'hs' AND pipeline = 'default'",
                logger: TestDatabase.logger
            ).decode((String, String?, Bool).self) {
                canonical[stage] = mapped
                if stage == "contractsent" { #expect(salesOwned, "negotiation is sales-owned in Mappings/hubspot.yaml") }
            }
            #expect(canonical.count == stageCount)
            #expect(canonical["closedwon"] == "closed_won")
            #expect(canonical["recycled"] == "mql")
            #expect(canonical["legalreview"] == .some(nil))
            let unmapped = try await client.query("SELECT stage, deals::int8 FROM reporting.unmapped_stages", logger: TestDatabase.logger)
                .collect().map { try $0.decode((String, Int64).self) }
            #expect(unmapped.map(\.0) == ["legalreview"])
            #expect(unmapped.first?.1 == 0)
        }
    }

    /// Two stage changes in the same millisecond (a bulk edit) keep HubSpot's order: deal 1 moved
    /// proposal → negotiation, deal 2 negotiation → proposal, each pair at one timestamp. The view's
    /// `position` says which came first, and the funnel counts only deal 1 as advancing from proposal.
    @Test func stageChangesThatShareATimestampKeepTheCRMsOrder() async throws {
        var data = SimulatedDataset.generate(seed: 31, deals: 2, now: Date())
        for (id, tied) in [(1, ["presentationscheduled", "contractsent"]), (2, ["contractsent", "presentationscheduled"])] {
            var deal = try #require(data.objects["deals"]?[id])
            let start = deal.createdAt, tie = deal.createdAt + 86_400_000
            deal.stageHistory = [("appointmentscheduled", start)] + tied.map { ($0, tie) }
            deal.properties["dealstage"] = tied[1]
            deal.properties["closedate"] = nil
            deal.updatedAt = max(deal.updatedAt, tie + 1_000)
            data.objects["deals"]?[id] = deal
        }
        let state = SimulatorState(data: data, seed: 31, rateLimit: (2_000, 1_000))
        try await TestDatabase.with { client, _ in
            try await support.withSimulator(state) { port in
                _ = try await support.sync(try support.connectorConfig(port: port, rate: 1_500, searchRate: 800), client: client)
            }
            let rows = try await client.query(
                "SELECT deal_external_id, stage, position FROM reporting.stage_history WHERE connector = 'hs'", logger: TestDatabase.logger
            ).collect().map { try $0.decode((String, String, Int64).self) }
            #expect(rows.map { "\($0.0) \($0.2) \($0.1)" } == [
                "1 1 appointmentscheduled", "1 2 presentationscheduled", "1 3 contractsent",
                "2 1 appointmentscheduled", "2 2 contractsent", "2 3 presentationscheduled",
            ])
            let funnel = try await client.query(
                "SELECT canonical_stage, deals_entered, deals_advanced FROM reporting.pipeline_funnel WHERE connector = 'hs'",
                logger: TestDatabase.logger
            ).collect().map { try $0.decode((String, Int64, Int64).self) }
            #expect(funnel.map { "\($0.0) \($0.1) \($0.2)" } == ["sql 2 2", "proposal 2 1", "negotiation 2 0"])
        }
    }
}
