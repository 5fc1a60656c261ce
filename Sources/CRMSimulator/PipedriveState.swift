import CRMSyncCore
import Foundation

/// Changes to a simulated Pipedrive company: a salesperson's edit during a sync (the `mutate` and
/// `out_of_order` faults) and activities created through the API.
extension SimulatorState {
    /// Pipedrive's "mutate" and "out_of_order" faults on the faults in force now (see `editDealsIfFaulted`).
    public func editPipedriveDealsIfFaulted() {
        if roll(faults.mutate) { mutatePipedriveDeal(backdated: false) }
        if roll(faults.outOfOrder) { mutatePipedriveDeal(backdated: true) }
    }

    /// Moves a random open-or-closed deal to another effective stage (a stage id, `won` or `lost`),
    /// changes its value and stamps it now, to the second. `backdated` stamps it 30 s in the past,
    /// as a late replica would.
    public func mutatePipedriveDeal(backdated: Bool) {
        guard let deals = data.objects["deals"], !deals.isEmpty else { return }
        let ids = deals.keys.sorted()
        let id = ids[randomInt(0..<ids.count)]
        guard var deal = deals[id], !deal.archived else { return }
        var stamp = CRMTimestamp.millis(CRMTimestamp.floorToSecond(now))
        if backdated { stamp -= 30_000 }
        // Whole seconds, never before the deal's own last change.
        stamp = max(stamp, deal.updatedAt + 1000, (deal.stageHistory.last?.1 ?? 0) + 1000)
        let choices = PipedriveCompany.stageIDs + ["won", "lost"]
        let next = choices[randomInt(0..<choices.count)]
        if next != PipedriveCompany.effectiveStage(deal) {
            if next == "won" || next == "lost" {
                deal.properties["status"] = next
                deal.properties["close_time"] = "\(stamp)"
            } else {
                deal.properties["status"] = "open"
                deal.properties["stage_id"] = next
                deal.properties["close_time"] = nil
            }
            deal.properties["stage_change_time"] = "\(stamp)"
            deal.stageHistory.append((next, stamp))
        }
        deal.properties["value"] = "\(randomInt(10..<300) * 10_000)"
        deal.updatedAt = stamp
        data.objects["deals"]![id] = deal
    }

    /// Stores an activity created with `POST /api/v1/activities`; `created_via` marks it so tests
    /// can find what the nurture engine asked for.
    public func createPipedriveActivity(_ properties: [String: String]) -> SimRecord {
        data.nextID += 1
        let stamp = CRMTimestamp.millis(CRMTimestamp.floorToSecond(now))
        var props = properties
        props["created_via"] = "api"
        let record = SimRecord(id: data.nextID, properties: props, createdAt: stamp, updatedAt: stamp)
        data.objects["activities", default: [:]][record.id] = record
        return record
    }

    /// Activities created through the API, oldest first.
    public var activitiesCreatedThroughAPI: [SimRecord] {
        (data.objects["activities"] ?? [:]).values.filter { $0.properties["created_via"] == "api" }.sorted { $0.id < $1.id }
    }
}

extension SimulatorState {
    /// Deletes a deal now, as a salesperson would; with `mergedInto` it was merged away (Pipedrive
    /// then lists it as deleted, like any other deleted deal).
    public func deletePipedriveDeal(_ id: Int, mergedInto: Int? = nil) {
        guard var deal = data.objects["deals"]?[id], !deal.archived else { return }
        let stamp = max(CRMTimestamp.millis(CRMTimestamp.floorToSecond(now)), deal.updatedAt + 1000)
        deal.archived = true
        deal.archivedAt = stamp
        deal.updatedAt = stamp
        deal.properties["merged_to_id"] = mergedInto.map(String.init)
        data.objects["deals"]![id] = deal
    }
}
