import CRMSyncCore
import Foundation

/// One record held by the simulator, in a CRM-neutral shape the wire formats render from.
public struct SimRecord: Sendable, Equatable {
    public var id: Int
    public var properties: [String: String]
    public var createdAt: Int64      // epoch ms
    public var updatedAt: Int64      // epoch ms
    public var archived = false
    public var archivedAt: Int64?
    /// Stage history, oldest first: (stage, entered at ms).
    public var stageHistory: [(String, Int64)] = []

    public static func == (lhs: SimRecord, rhs: SimRecord) -> Bool {
        lhs.id == rhs.id && lhs.properties == rhs.properties && lhs.updatedAt == rhs.updatedAt && lhs.archived == rhs.archived
            && lhs.stageHistory.map(\.0) == rhs.stageHistory.map(\.0) && lhs.stageHistory.map(\.1) == rhs.stageHistory.map(\.1)
    }
}

/// An engagement event as the MA/ESP would post it to `/webhooks/events` (contract body).
public struct SimEngagementEvent: Sendable, Codable, Equatable {
    public struct Contact: Sendable, Codable, Equatable {
        public var email: String
        public var external_id: String?
    }
    public var type: String
    public var id: String
    public var occurred_at: String
    public var contact: Contact
    public var campaign: String?
    public var sequence: String?
    public var step: Int?
    public var url: String?
}

/// The simulated CRM's data: seeded, deterministic, and mutable through the API (tasks) and faults.
public struct SimulatedDataset: Sendable {
    public var owners: [SimRecord] = []
    /// Object name (HubSpot's: companies, contacts, deals, calls, meetings, emails, tasks) → id → record.
    public var objects: [String: [Int: SimRecord]] = [:]
    /// "deals->contacts" → from id → to ids.
    public var associations: [String: [Int: [Int]]] = [:]
    public var pipelineStages: [String] = []
    public var events: [SimEngagementEvent] = []
    public var nextID = 1_000_000
    /// Whether the simulated Salesforce org has multiple currencies enabled: only then do its
    /// records carry `CurrencyIsoCode`.
    public var multiCurrency = true

    static let stages = ["appointmentscheduled", "qualifiedtobuy", "presentationscheduled", "decisionmakerboughtin", "contractsent"]
    static let campaigns = ["wp-2026-q4", "webinar-2026-10", "tradeshow-2026", "pricing-page"]

    /// Builds a CRM with `deals` deals, about one company per five deals, one or two contacts per deal,
    /// stage histories of one to five entries, calls and meetings, a few archived and merged records,
    /// and modification stamps that deliberately share milliseconds.
    public static func generate(seed: UInt64, deals dealCount: Int, now: Date) -> SimulatedDataset {
        var rng = SeededRandom(seed: seed)
        var data = SimulatedDataset()
        data.pipelineStages = stages + ["closedwon", "closedlost", "recycled"]
        let nowMs = CRMTimestamp.millis(now)
        let day: Int64 = 86_400_000
        // Stamps are drawn from a grid of whole seconds so that ties on one millisecond are common.
        func stamp(_ range: ClosedRange<Int64>) -> Int64 {
            let base = Int64.random(in: range, using: &rng)
            return base - base % (rng.chance(0.3) ? 1000 : 1)
        }
        for i in 1...10 {
            data.owners.append(SimRecord(
                id: 100 + i, properties: ["email": "owner\(i)@example.co.jp", "firstName": "Owner", "lastName": "\(i)"],
                createdAt: nowMs - 400 * day, updatedAt: nowMs - Int64(i) * day))
        }
        let companyCount = max(1, dealCount / 5)
        var companies: [Int: SimRecord] = [:]
        for i in 1...companyCount {
            let updated = stamp((nowMs - 200 * day)...(nowMs - 1000))
            companies[i] = SimRecord(
                id: i, properties: ["name": "Company \(i) K.K.", "domain": "company\(i).example.co.jp",
                                    "hubspot_owner_id": "\(101 + i % 10)", "hs_lastmodifieddate": CRMTimestamp.iso(.init(ms: updated))],
                createdAt: nowMs - 300 * day, updatedAt: updated)
        }
        var contacts: [Int: SimRecord] = [:]
        var dealsByID: [Int: SimRecord] = [:]
        var dealContacts: [Int: [Int]] = [:]
        var dealCompanies: [Int: [Int]] = [:]
        var contactID = 1
        for i in 1...dealCount {
            let company = 1 + (i - 1) % companyCount
            let owner = "\(101 + i % 10)"
            var linked: [Int] = []
            for _ in 0..<(rng.chance(0.3) ? 2 : 1) {
                let updated = stamp((nowMs - 150 * day)...(nowMs - 1000))
                contacts[contactID] = SimRecord(
                    id: contactID,
                    properties: ["email": "contact\(contactID)@company\(company).example.co.jp", "firstname": "Taro",
                                 "lastname": "Yamada \(contactID)", "company": "Company \(company) K.K.",
                                 "associatedcompanyid": "\(company)", "hubspot_owner_id": owner, "lifecyclestage": "salesqualifiedlead",
                                 "lastmodifieddate": CRMTimestamp.iso(.init(ms: updated))],
                    createdAt: nowMs - 200 * day, updatedAt: updated)
                linked.append(contactID)
                contactID += 1
            }
            let created = Int64.random(in: (nowMs - 120 * day)...(nowMs - 20 * day), using: &rng)
            var history: [(String, Int64)] = []
            var at = created
            let steps = Int.random(in: 1...5, using: &rng)
            for step in 0..<steps {
                history.append((stages[min(step, stages.count - 1)], at))
                at += Int64.random(in: (1 * day)...(6 * day), using: &rng)
            }
            var closed: Int64?
            let roll = Double.random(in: 0..<1, using: &rng)
            if roll < 0.25 {
                history.append(("closedwon", at)); closed = at
            } else if roll < 0.4 {
                history.append(("closedlost", at)); closed = at
            }
            let updated = max(history.last!.1 + 1000, stamp((nowMs - 20 * day)...(nowMs - 1000)))
            let amount = Int.random(in: 10...300, using: &rng) * 10_000
            var properties = [
                "dealname": "Deal \(i)", "amount": "\(amount)", "deal_currency_code": "JPY", "pipeline": "default",
                "dealstage": history.last!.0, "hubspot_owner_id": owner,
                "createdate": CRMTimestamp.iso(.init(ms: created)),
                "hs_lastmodifieddate": CRMTimestamp.iso(.init(ms: updated)),
            ]
            if let closed { properties["closedate"] = CRMTimestamp.iso(.init(ms: closed)) }
            dealsByID[i] = SimRecord(id: i, properties: properties, createdAt: created, updatedAt: updated, stageHistory: history)
            dealContacts[i] = linked
            dealCompanies[i] = [company]
            // Marketing touches before the deal existed, for attribution.
            for contact in linked {
                let email = contacts[contact]!.properties["email"]!
                for n in 0..<Int.random(in: 1...3, using: &rng) {
                    let campaign = campaigns[Int.random(in: 0..<campaigns.count, using: &rng)]
                    let when = created - Int64.random(in: (1 * day)...(40 * day), using: &rng)
                    let type = ["form.submitted", "email.clicked", "webinar.attended", "page.viewed"][Int.random(in: 0..<4, using: &rng)]
                    data.events.append(SimEngagementEvent(
                        type: type, id: "evt_\(i)_\(contact)_\(n)", occurred_at: CRMTimestamp.iso(.init(ms: when)),
                        contact: .init(email: email, external_id: "hubspot:\(contact)"), campaign: campaign,
                        sequence: nil, step: nil, url: type == "page.viewed" ? "https://example.com/pricing" : nil))
                }
            }
        }
        // A few engagements by the owners.
        var calls: [Int: SimRecord] = [:]
        var callContacts: [Int: [Int]] = [:]
        var callDeals: [Int: [Int]] = [:]
        for i in 1...max(1, dealCount / 4) {
            let deal = 1 + (i * 7) % dealCount
            let updated = stamp((nowMs - 30 * day)...(nowMs - 1000))
            calls[i] = SimRecord(
                id: i, properties: ["hs_timestamp": CRMTimestamp.iso(.init(ms: updated - day)), "hubspot_owner_id": "\(101 + deal % 10)",
                                    "hs_call_title": "Call about deal \(deal)", "hs_lastmodifieddate": CRMTimestamp.iso(.init(ms: updated))],
                createdAt: updated - day, updatedAt: updated)
            callContacts[i] = dealContacts[deal] ?? []
            callDeals[i] = [deal]
        }
        // Merges: every 200th deal absorbed the next one, which is archived.
        for i in stride(from: 200, to: dealCount, by: 200) where dealsByID[i + 1] != nil {
            dealsByID[i]!.properties["hs_merged_object_ids"] = "\(i + 1)"
            dealsByID[i + 1]!.archived = true
            dealsByID[i + 1]!.archivedAt = dealsByID[i]!.updatedAt
        }
        // Plain deletions: every 150th deal.
        for i in stride(from: 150, to: dealCount, by: 150) where dealsByID[i]?.archived == false {
            dealsByID[i]!.archived = true
            dealsByID[i]!.archivedAt = dealsByID[i]!.updatedAt + 1000
        }
        // Meetings, drawn from a generator of their own so that everything above stays as it was.
        var meetingRandom = SeededRandom(seed: seed ^ 0x4D45_4554)
        var meetings: [Int: SimRecord] = [:]
        var meetingContacts: [Int: [Int]] = [:]
        var meetingDeals: [Int: [Int]] = [:]
        for i in 1...max(1, dealCount / 10) {
            let deal = 1 + (i * 13) % dealCount
            let drawn = Int64.random(in: (nowMs - 30 * day)...(nowMs - 1000), using: &meetingRandom)
            let updated = drawn - drawn % 1000
            meetings[i] = SimRecord(
                id: i, properties: ["hs_timestamp": CRMTimestamp.iso(.init(ms: updated - 2 * day)), "hubspot_owner_id": "\(101 + deal % 10)",
                                    "hs_meeting_title": "Meeting about deal \(deal)", "hs_lastmodifieddate": CRMTimestamp.iso(.init(ms: updated))],
                createdAt: updated - 3 * day, updatedAt: updated)
            meetingContacts[i] = dealContacts[deal] ?? []
            meetingDeals[i] = [deal]
        }
        data.objects = ["companies": companies, "contacts": contacts, "deals": dealsByID, "calls": calls,
                        "meetings": meetings, "emails": [:], "tasks": [:]]
        data.associations = ["deals->contacts": dealContacts, "deals->companies": dealCompanies,
                             "calls->contacts": callContacts, "calls->deals": callDeals,
                             "meetings->contacts": meetingContacts, "meetings->deals": meetingDeals]
        data.events += sequenceMail(contacts: contacts, seed: seed, now: CRMTimestamp.millis(now))
        data.events.sort { $0.occurred_at < $1.occurred_at }
        return data
    }

    /// Step mails of the white-paper follow-up to a fifth of the contacts, with opens, clicks and
    /// unsubscribes thinning out step by step (the ESP's side of the e-mail KPIs). A generator of
    /// its own, so the CRM records above stay the same for a seed.
    static func sequenceMail(contacts: [Int: SimRecord], seed: UInt64, now: Int64) -> [SimEngagementEvent] {
        var rng = SeededRandom(seed: seed ^ 0x5E0_0E17)
        let day: Int64 = 86_400_000
        var events: [SimEngagementEvent] = []
        for id in contacts.keys.sorted() where id % 5 == 0 {
            guard let email = contacts[id]?.properties["email"] else { continue }
            var at = now - 30 * day + Int64.random(in: 0..<(5 * day), using: &rng)
            for step in 1...4 {
                func event(_ type: String, after: Int64) {
                    events.append(SimEngagementEvent(
                        type: type, id: "seq_\(id)_\(step)_\(type)", occurred_at: CRMTimestamp.iso(.init(ms: at + after)),
                        contact: .init(email: email, external_id: "hubspot:\(id)"), campaign: "wp-2026-q4",
                        sequence: "white-paper-follow-up", step: step, url: type == "email.clicked" ? "https://example.com/wp" : nil))
                }
                event("email.sent", after: 0)
                event("email.delivered", after: 60_000)
                if rng.chance(0.55 - 0.08 * Double(step)) {
                    event("email.opened", after: 3_600_000)
                    if rng.chance(0.35) { event("email.clicked", after: 3_700_000) }
                }
                if rng.chance(0.01 + 0.005 * Double(step)) {
                    event("email.unsubscribed", after: 3_800_000)
                    break
                }
                at += [2, 3, 3][min(step - 1, 2)] * day
            }
        }
        return events
    }
}

extension Date {
    init(ms: Int64) { self = CRMTimestamp.fromMillis(ms) }
}
