import CRMSimulator
import CRMSyncTestSupport
import Foundation
import Testing

/// HubSpot's own Python client (hubspot-api-client 12.0.0) pointed at the simulator: if the
/// simulator's wire format drifted from HubSpot's, the generated models would fail to deserialize
/// or answer `None`, and the counts would not match the simulator's data.
@Suite struct HubSpotFidelityTests {
    let support = SyncAgainstSimulatorTests()

    @Test func theOfficialClientReadsTheSimulatorLikeHubSpot() async throws {
        let data = SimulatedDataset.generate(seed: 77, deals: 300, now: Date())
        let state = SimulatorState(data: data, seed: 77, rateLimit: (1_000, 1_000))
        try await support.withSimulator(state) { port in
            let output = try await OfficialClient.run("hubspot_client.py", ["--host", "http://127.0.0.1:\(port)", "--token", "sim-token"])
            let summary = try output.json()
            #expect(output.status == 0, "client reported: \(summary["problems"] ?? output.stderr)")
            #expect((summary["problems"] as? [String]) == [])

            let deals = await state.records("deals").values
            let live = deals.filter { !$0.archived }
            let search = try #require(summary["search"] as? [String: Any])
            #expect(search["ids"] as? Int == live.count, "every live deal found by the incremental search")
            #expect(search["distinct"] as? Int == live.count, "no deal twice across pages")
            #expect(search["total"] as? Int == live.count)
            let list = try #require(summary["list"] as? [String: Any])
            #expect(list["live"] as? Int == live.count)
            #expect(list["archived_first_page"] as? Int == min(100, deals.count - live.count))

            let histories = try #require(summary["history"] as? [String: Int])
            #expect(histories.count == 10)
            for (id, count) in histories {
                #expect(count == deals.first { "\($0.id)" == id }?.stageHistory.count, "history length of deal \(id)")
            }
            let links = try #require(summary["associations"] as? [String: [Int]])
            for (id, contacts) in links {
                #expect(contacts == (await state.linked("deals->contacts", from: Int(id)!)).sorted(), "contacts of deal \(id)")
            }
            #expect(summary["owners"] as? Int == data.owners.count)
            #expect(summary["stages"] as? [String] == data.pipelineStages)
            #expect(summary["wrong_token"] as? String == "UnauthorizedException")

            // The task the client created is in the CRM, linked to the deal, as a nurture engine's task would be.
            let taskID = try #require((summary["created_task"] as? String).flatMap(Int.init))
            let task = try #require(await state.records("tasks")[taskID])
            #expect(task.properties["hs_task_subject"] == "Call back: stalled deal")
        }
    }
}
