import AsyncHTTPClient
import CRMSyncApp
import CRMSyncConfig
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import NIOCore
import Testing

@testable import CRMSimulator

/// The nurture engine's decisions leave the building: the tick commits commands, the dispatcher
/// built from the config (as `serve` and `outbox deliver` build it) sends them, and they take
/// effect in the MA tool and in the CRM.
@Suite struct NurtureToCRMTests {
    typealias H = NurtureHarness

    /// Must show 2, end to end: a prospect whose deal sits in a sales-owned stage without sales
    /// activity for the stall threshold gets a task in the simulated HubSpot, read back through
    /// HubSpot's objects API with its subject, owner, due date and associations; the reactivation
    /// reaches the MA tool.
    @Test func aStalledProspectsTaskAppearsInTheCRMThroughItsAPI() async throws {
        let hubspot = SimulatorState(data: SimulatedDataset.generate(seed: 21, deals: 3, now: Date()), rateLimit: (1_000, 1_000))
        let contact = try #require(await hubspot.records("contacts").keys.min())
        let deal = try #require(await hubspot.records("deals").keys.min())
        let owner = try #require(await hubspot.data.owners.first?.id)
        let qualified = H.at("2026-11-02T01:00:00Z")
        let stalledAt = H.at("2026-11-24T01:00:00Z")   // 22 days on; the mapping stalls after 21
        let clock = FakeClock(stalledAt)
        let ma = try FlakyReceiver(secret: OutboxTests.secret, clock: clock) { _, _ in .ok }

        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("\(contact)", owner: "\(owner)")
            try await h.deal("\(deal)", contact: "\(contact)", stage: "presentationscheduled", canonical: "proposal", at: qualified, owner: "\(owner)")
            try await h.tick(qualified)
            #expect(try await h.tick(stalledAt).stalled == 1)

            let delivered = try await OutboxTests.withReceiver(ma) { maURL in
                try await OutboxTests.withSimulator(.hubspot, hubspot) { port in
                    var config = AppConfig(connectors: [try OutboxTests.connector(H.connector, .hubspot, port: port)])
                    config.outbound = OutboundConfig(url: maURL, secret: OutboxTests.secret)
                    let dispatcher = try OutboxDispatcher.make(config: config, client: client, clock: clock.function, logger: h.logger)
                    var total = OutboxPassSummary()
                    // The contact's commands go out in creation order, one pass each at most.
                    for _ in 0..<5 { total = total + (try await dispatcher.pass()) }
                    return total
                }
            }
            let commands = try await h.commands()
            #expect(delivered == OutboxPassSummary(delivered: commands.count), "\(commands)")
            #expect(Set(commands.map(\.type)) == ["create_task", "reactivate", "send_step"])

            // The CRM's id of the task is kept on the command.
            let rows = try await client.query(
                "SELECT crm_record_id FROM crm.outbox WHERE command_type = 'create_task' AND delivered_at IS NOT NULL", logger: h.logger
            ).collect()
            #expect(rows.count == 1)
            let taskID = try #require(try rows.first?.decode(String?.self))

            // Read back over HTTP, as a HubSpot user's tools would see it.
            try await OutboxTests.withSimulator(.hubspot, hubspot) { port in
                var request = HTTPClientRequest(
                    url: "http://127.0.0.1:\(port)/crm/v3/objects/tasks?limit=100&properties=hs_task_subject,hubspot_owner_id,hs_timestamp,hs_task_status")
                request.headers.add(name: "Authorization", value: "Bearer sim-token")
                let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                #expect(response.status == .ok)
                let body = try await response.body.collect(upTo: 1 << 20)
                let json = try #require(try JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any])
                let results = try #require(json["results"] as? [[String: Any]])
                #expect(results.count == 1, "one task, created once")
                let task = try #require(results.first { $0["id"] as? String == taskID })
                let properties = try #require(task["properties"] as? [String: Any])
                #expect((properties["hs_task_subject"] as? String)?.hasPrefix("Stalled prospect: no sales activity since 2026-11-02") == true)
                #expect(properties["hubspot_owner_id"] as? String == "\(owner)")
                #expect(properties["hs_timestamp"] as? String == "2026-11-25T01:00:00.000Z")   // HubSpot writes milliseconds
                #expect(properties["hs_task_status"] as? String == "NOT_STARTED")
            }
            let id = try #require(Int(taskID))
            #expect(await hubspot.linked("tasks->contacts", from: id) == [contact])
            #expect(await hubspot.linked("tasks->deals", from: id) == [deal])

            // The MA tool got the reactivation and the sequence's first step, each once.
            let effects = await ma.effects
            #expect(effects.count == 2)
            #expect(Set(effects.map(\.contact)) == ["\(H.connector):\(contact)"])
        }
    }
}
