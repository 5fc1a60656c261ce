import CRMSyncCore
import Foundation

/// A seeded Pipedrive company in the simulator's CRM-neutral records. Objects are named as
/// Pipedrive names them (`deals`, `persons`, `organizations`, `activities`; `owners` are users) and
/// properties carry Pipedrive field names. Every stamp is a whole second, as Pipedrive's are, so
/// records sharing an `update_time` are the rule, not the exception.
///
/// A deal's `stageHistory` holds its *effective* stage: the stage id while open, `won` / `lost`
/// once closed (the keys `Mappings/pipedrive.yaml` uses); its `stage_id` property keeps the last
/// pipeline stage, as Pipedrive does after a deal is won.
public enum PipedriveCompany {
    /// Pipeline 1's stage ids, in order; `6` is the custom "Recycled" stage.
    public static let stageIDs = ["1", "2", "3", "4", "5", "6"]
    static let stageNames = ["Qualified", "Contact Made", "Demo Scheduled", "Proposal Made", "Negotiations Started", "Recycled"]
    public static let activityTypes = ["call", "meeting", "email", "task", "deadline", "lunch"]
    /// Users' ids start here, persons and organizations at 1, activities at 1.
    public static let firstUserID = 9_001

    public static func generate(seed: UInt64, deals dealCount: Int, now: Date) -> SimulatedDataset {
        var rng = SeededRandom(seed: seed ^ 0x919E_D41E)
        var data = SimulatedDataset()
        data.pipelineStages = stageIDs
        let second: Int64 = 1000
        let day: Int64 = 86_400_000
        let nowMs = CRMTimestamp.millis(CRMTimestamp.floorToSecond(now))
        // Whole seconds; a third snapped to the hour, so many records share one stamp.
        func stamp(_ range: ClosedRange<Int64>) -> Int64 {
            let base = Int64.random(in: range, using: &rng)
            return base - base % (rng.chance(0.3) ? 3_600_000 : second)
        }
        for i in 0..<10 {
            let id = firstUserID + i
            data.owners.append(SimRecord(
                id: id, properties: ["name": "Sales Rep \(i + 1)", "email": "rep\(i + 1)@example.co.jp",
                                     "active_flag": i == 9 ? "false" : "true"],
                createdAt: nowMs - 400 * day, updatedAt: nowMs - Int64(i + 1) * day))
        }
        func owner(_ n: Int) -> String { "\(firstUserID + n % 10)" }
        let orgCount = max(1, dealCount / 5)
        var organizations: [Int: SimRecord] = [:]
        for i in 1...orgCount {
            let updated = stamp((nowMs - 200 * day)...(nowMs - second))
            organizations[i] = SimRecord(
                id: i, properties: ["name": "Company \(i) K.K.", "owner_id": owner(i)],
                createdAt: updated - 100 * day, updatedAt: updated)
        }
        var persons: [Int: SimRecord] = [:]
        func addPerson(org: Int, owner ownerID: String) -> Int {
            let id = persons.count + 1
            let updated = stamp((nowMs - 150 * day)...(nowMs - second))
            persons[id] = SimRecord(
                id: id, properties: ["first_name": "Taro", "last_name": "Yamada \(id)", "name": "Taro Yamada \(id)",
                                     "email": "person\(id)@company\(org).example.co.jp", "owner_id": ownerID, "org_id": "\(org)"],
                createdAt: updated - 50 * day, updatedAt: updated)
            return id
        }
        var deals: [Int: SimRecord] = [:]
        // A bulk edit touched a quarter of the deals in one second: ties far larger than a page.
        let bulkEdit = nowMs - 2 * day - (nowMs % second)
        for i in 1...dealCount {
            let org = 1 + (i - 1) % orgCount
            let ownerID = owner(i)
            let person = addPerson(org: org, owner: ownerID)
            if rng.chance(0.2) { _ = addPerson(org: org, owner: ownerID) }
            let created = Int64.random(in: (nowMs - 120 * day)...(nowMs - 40 * day), using: &rng) / second * second
            var history: [(String, Int64)] = []
            var at = created
            for step in 0..<Int.random(in: 1...5, using: &rng) {
                history.append((stageIDs[min(step, 4)], at))
                at += Int64.random(in: (1 * day)...(6 * day), using: &rng) / second * second
            }
            let lastStage = history.last!.0
            var status = "open"
            let roll = Double.random(in: 0..<1, using: &rng)
            if roll < 0.25 { status = "won" } else if roll < 0.4 { status = "lost" } else if roll < 0.45 {
                history.append(("6", at)); at += day
            }
            var properties = [
                "title": "Deal \(i)", "value": "\(Int.random(in: 10...300, using: &rng) * 10_000)", "currency": "JPY",
                "owner_id": ownerID, "person_id": "\(person)", "org_id": "\(org)", "pipeline_id": "1",
                "stage_id": history.last!.0 == "6" ? "6" : lastStage, "status": status,
            ]
            if status != "open" {
                history.append((status, at))
                properties["close_time"] = "\(at)"
            }
            let last = history.last!.1
            properties["stage_change_time"] = "\(last)"
            let updated = i % 4 == 0 ? bulkEdit : max(last + second, stamp((nowMs - 20 * day)...(nowMs - second)))
            var deal = SimRecord(id: i, properties: properties, createdAt: created, updatedAt: updated)
            deal.stageHistory = history
            deals[i] = deal
        }
        // Merges: every 200th deal absorbed the next one, which Pipedrive then lists as deleted.
        for i in stride(from: 200, to: dealCount, by: 200) where deals[i + 1] != nil {
            deals[i]!.updatedAt = max(deals[i]!.updatedAt, nowMs - day)
            deals[i + 1]!.archived = true
            deals[i + 1]!.archivedAt = deals[i]!.updatedAt
            deals[i + 1]!.properties["merged_to_id"] = "\(i)"
        }
        // Plain deletions: every 150th deal, a day ago.
        for i in stride(from: 150, to: dealCount, by: 150) where deals[i]?.archived == false {
            deals[i]!.archived = true
            deals[i]!.archivedAt = nowMs - day + Int64(i) * second
        }
        for id in deals.keys where deals[id]!.archived {
            deals[id]!.updatedAt = deals[id]!.archivedAt!
        }
        var activities: [Int: SimRecord] = [:]
        for i in 1...max(1, dealCount / 2) {
            let dealID = 1 + (i * 7) % dealCount
            let deal = deals[dealID]!
            let updated = stamp((nowMs - 30 * day)...(nowMs - second))
            let due = updated - Int64.random(in: 0...(5 * day), using: &rng) / 60_000 * 60_000
            let type = activityTypes[Int.random(in: 0..<activityTypes.count, using: &rng)]
            activities[i] = SimRecord(
                id: i, properties: ["subject": "\(type.capitalized) about deal \(dealID)", "type": type,
                                    "owner_id": deal.properties["owner_id"]!, "deal_id": "\(dealID)",
                                    "person_id": deal.properties["person_id"]!, "org_id": deal.properties["org_id"]!,
                                    "due": "\(due)", "done": rng.chance(0.6) ? "true" : "false"],
                createdAt: updated - day, updatedAt: updated)
        }
        data.objects = ["deals": deals, "persons": persons, "organizations": organizations, "activities": activities]
        data.nextID = 100_000
        return data
    }

    /// The stage a deal is in now: its status once closed, its stage id while open.
    public static func effectiveStage(_ deal: SimRecord) -> String {
        let status = deal.properties["status"] ?? "open"
        return status == "won" || status == "lost" ? status : deal.properties["stage_id"] ?? "1"
    }
}
