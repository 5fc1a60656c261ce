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
}
