import CRMSyncCore
import Foundation

/// Salesforce-style record ids: the object's 3-character key prefix, 12 characters for the
/// record, and the 3-character suffix that makes the id unique without regard to case.
public enum SalesforceID {
    public static let account = "001", contact = "003", user = "005", opportunity = "006", opportunityHistory = "008"
    public static let contactRole = "00K", lead = "00Q", task = "00T", event = "00U", campaignMember = "00v", campaign = "701"

    /// The id of record `number` of the object with key prefix `prefix`, e.g. `0065g0000000042AAA`.
    public static func make(_ prefix: String, _ number: Int) -> String {
        let digits = String(number)
        let base = prefix + "5g" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits
        return base + suffix(base)
    }

    /// The record number inside an id of the given prefix (nil for another object's id).
    public static func number(_ id: String, prefix: String) -> Int? {
        guard id.count == 18, id.hasPrefix(prefix + "5g") else { return nil }
        return Int(id.dropFirst(5).prefix(10))
    }

    /// One letter per 5-character chunk of the 15-character id, whose bits flag its upper-case letters.
    static func suffix(_ id: String) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ012345")
        let characters = Array(id.prefix(15))
        return String((0..<3).map { chunk in
            var bits = 0
            for offset in 0..<5 where characters[chunk * 5 + offset].isUppercase && characters[chunk * 5 + offset].isASCII {
                bits |= 1 << offset
            }
            return alphabet[bits]
        })
    }
}

/// HubSpot's default pipeline stage ids as the `StageName`s of Salesforce's default sales process.
public enum SalesforceStage {
    public static let names: [String: String] = [
        "appointmentscheduled": "Prospecting", "qualifiedtobuy": "Needs Analysis",
        "presentationscheduled": "Proposal/Price Quote", "decisionmakerboughtin": "Perception Analysis",
        "contractsent": "Negotiation/Review", "closedwon": "Closed Won", "closedlost": "Closed Lost", "recycled": "Recycled",
    ]

    /// The `StageName` for a simulated stage id (an unknown id is kept as it is).
    public static func name(_ stage: String) -> String { names[stage] ?? stage }
}

/// A field value in the types Salesforce's REST JSON uses.
enum SFValue: Sendable, Equatable {
    case null
    case string(String)
    case number(Decimal)
    case bool(Bool)
    /// Epoch milliseconds, written `2026-11-02T01:23:45.000+0000`.
    case dateTime(Int64)
    /// Epoch milliseconds of a UTC day, written `2026-11-30`.
    case date(Int64)

    var json: Any {
        switch self {
        case .null: NSNull()
        case .string(let text): text
        // NSDecimalNumber keeps money exact in the JSON text (a Double would not).
        case .number(let value): NSDecimalNumber(decimal: value)
        case .bool(let value): value
        case .dateTime(let ms): SFValue.dateTimeText(ms)
        case .date(let ms): String(CRMTimestamp.iso(Date(ms: ms)).prefix(10))
        }
    }

    static func dateTimeText(_ ms: Int64) -> String {
        String(CRMTimestamp.iso(Date(ms: ms)).dropLast()) + "+0000"
    }

    static func id(_ prefix: String, _ number: Int?) -> SFValue {
        number.map { .string(SalesforceID.make(prefix, $0)) } ?? .null
    }

    static func text(_ value: String?) -> SFValue { value.map { .string($0) } ?? .null }
}

/// One record of an sObject: its fields by API name, and when it was deleted (for `deleted/`).
struct SObjectRow: Sendable {
    var fields: [String: SFValue]
    var deletedAt: Int64?

    var id: String {
        if case .string(let id) = fields["Id"] { return id }
        return ""
    }

    subscript(_ field: String) -> SFValue { fields[field] ?? .null }
}

/// The simulator's CRM-neutral data seen as a Salesforce org: which objects and fields exist, and
/// their rows. Everything is derived from `SimulatedDataset` on each call, so mutations and
/// created tasks show up at once and the HubSpot and Salesforce views of one dataset agree.
struct SalesforceOrg {
    let data: SimulatedDataset

    /// Field API names per object, as SOQL may name them (any case).
    static let schema: [String: [String]] = [
        "User": ["Id", "Name", "FirstName", "LastName", "Email", "IsActive", "CreatedDate", "SystemModstamp"],
        "Account": ["Id", "Name", "Website", "OwnerId", "MasterRecordId", "CreatedDate", "SystemModstamp", "IsDeleted"],
        "Contact": ["Id", "Name", "FirstName", "LastName", "Email", "AccountId", "OwnerId", "MasterRecordId", "CreatedDate",
                    "SystemModstamp", "IsDeleted"],
        "Lead": ["Id", "Name", "FirstName", "LastName", "Email", "Company", "Status", "OwnerId", "IsConverted",
                 "ConvertedContactId", "MasterRecordId", "CreatedDate", "SystemModstamp", "IsDeleted"],
        "Opportunity": ["Id", "Name", "Amount", "CurrencyIsoCode", "StageName", "OwnerId", "AccountId", "CreatedDate", "CloseDate",
                        "IsClosed", "IsWon", "LastModifiedDate", "SystemModstamp", "IsDeleted", "Gross_Margin__c"],
        "OpportunityHistory": ["Id", "OpportunityId", "StageName", "CreatedDate", "SystemModstamp", "IsDeleted"],
        "OpportunityContactRole": ["Id", "OpportunityId", "ContactId", "Role", "IsPrimary", "CreatedDate", "SystemModstamp", "IsDeleted"],
        "Task": ["Id", "WhoId", "WhatId", "OwnerId", "Subject", "Description", "ActivityDate", "CompletedDateTime", "Status", "Priority",
                 "TaskSubtype", "CreatedDate", "SystemModstamp", "IsDeleted"],
        "Event": ["Id", "WhoId", "WhatId", "OwnerId", "Subject", "ActivityDate", "ActivityDateTime", "StartDateTime",
                  "EndDateTime", "DurationInMinutes", "CreatedDate", "SystemModstamp", "IsDeleted"],
        "Campaign": ["Id", "Name", "Type", "Status", "StartDate", "EndDate", "IsActive", "ActualCost", "BudgetedCost",
                     "CurrencyIsoCode", "CreatedDate", "SystemModstamp", "IsDeleted"],
        "Organization": ["Id", "Name", "DefaultCurrencyIsoCode", "IsSandbox", "SystemModstamp"],
        "OpportunityStage": ["Id", "ApiName", "MasterLabel", "SortOrder", "IsActive", "IsClosed", "IsWon", "DefaultProbability",
                             "SystemModstamp"],
        "CampaignMember": ["Id", "CampaignId", "ContactId", "LeadId", "Status", "HasResponded", "CreatedDate",
                           "SystemModstamp", "IsDeleted"],
    ]

    /// The object's API name for a name in any case.
    static func object(named name: String) -> String? {
        schema.keys.first { $0.caseInsensitiveCompare(name) == .orderedSame }
    }

    /// The field's API name on `object` for a name in any case.
    static func field(_ name: String, on object: String) -> String? {
        schema[object]?.first { $0.caseInsensitiveCompare(name) == .orderedSame }
    }

    func rows(_ object: String) -> [SObjectRow] {
        switch object {
        case "User": users()
        case "Account": accounts()
        case "Contact": contacts()
        case "Opportunity": opportunities()
        case "OpportunityHistory": opportunityHistory()
        case "OpportunityContactRole": contactRoles()
        case "Task": tasks()
        case "Event": events()
        case "Campaign": campaigns()
        case "CampaignMember": campaignMembers()
        case "Organization": [organization()]
        case "OpportunityStage": opportunityStages()
        default: []   // Lead: the simulated org has none
        }
    }

    /// Fields a single-currency org does not have.
    static let multiCurrencyFields: Set<String> = ["CurrencyIsoCode"]

    /// The org's corporate currency: the one its opportunities are in.
    var currency: String {
        sorted("deals").lazy.compactMap { $0.properties["deal_currency_code"] }.first ?? "JPY"
    }

    // MARK: Objects

    func organization() -> SObjectRow {
        SObjectRow(fields: [
            "Id": .string(SalesforceID.make("00D", 1)), "Name": .string("Simulated Org K.K."),
            "DefaultCurrencyIsoCode": .string(currency), "IsSandbox": .bool(false),
            "SystemModstamp": .dateTime(data.owners.first?.createdAt ?? 0),
        ])
    }

    /// The default sales process's stage picklist, as `OpportunityStage` lists it; `Recycled` is a
    /// stage the org added, and one inactive stage shows that only active ones should be read.
    func opportunityStages() -> [SObjectRow] {
        let stages: [(String, Bool, Bool, Bool, Int)] = [   // ApiName, active, closed, won, probability
            ("Prospecting", true, false, false, 10), ("Qualification", true, false, false, 10),
            ("Needs Analysis", true, false, false, 20), ("Value Proposition", true, false, false, 50),
            ("Id. Decision Makers", true, false, false, 60), ("Perception Analysis", true, false, false, 70),
            ("Proposal/Price Quote", true, false, false, 75), ("Negotiation/Review", true, false, false, 90),
            ("Recycled", true, false, false, 5), ("Closed Won", true, true, true, 100), ("Closed Lost", true, true, false, 0),
            ("Legacy Evaluation", false, false, false, 30),
        ]
        return stages.enumerated().map { index, stage in
            SObjectRow(fields: [
                "Id": .string(SalesforceID.make("01J", index + 1)), "ApiName": .string(stage.0), "MasterLabel": .string(stage.0),
                "SortOrder": .number(Decimal(index + 1)), "IsActive": .bool(stage.1), "IsClosed": .bool(stage.2),
                "IsWon": .bool(stage.3), "DefaultProbability": .number(Decimal(stage.4)),
                "SystemModstamp": .dateTime(data.owners.first?.createdAt ?? 0),
            ])
        }
    }

    private func owner(_ text: String?) -> SFValue { .id(SalesforceID.user, text.flatMap { Int($0) }) }

    private func millis(_ text: String?) -> Int64? { text.flatMap(CRMTimestamp.parse).map(CRMTimestamp.millis) }

    /// Deleting a record stamps it: the later of its last change and its deletion.
    private func stamp(_ record: SimRecord) -> Int64 {
        record.archived ? max(record.updatedAt, record.archivedAt ?? record.updatedAt) : record.updatedAt
    }

    private func row(_ record: SimRecord, _ fields: [String: SFValue]) -> SObjectRow {
        var all = fields
        all["CreatedDate"] = all["CreatedDate"] ?? .dateTime(record.createdAt)
        all["SystemModstamp"] = .dateTime(stamp(record))
        all["IsDeleted"] = .bool(record.archived)
        return SObjectRow(fields: all, deletedAt: record.archived ? (record.archivedAt ?? record.updatedAt) : nil)
    }

    private func sorted(_ object: String) -> [SimRecord] {
        (data.objects[object] ?? [:]).values.sorted { $0.id < $1.id }
    }

    func users() -> [SObjectRow] {
        data.owners.map { owner in
            let first = owner.properties["firstName"], last = owner.properties["lastName"]
            return SObjectRow(fields: [
                "Id": .id(SalesforceID.user, owner.id), "FirstName": .text(first), "LastName": .text(last),
                "Name": .text([first, last].compactMap { $0 }.joined(separator: " ")), "Email": .text(owner.properties["email"]),
                "IsActive": .bool(true), "CreatedDate": .dateTime(owner.createdAt), "SystemModstamp": .dateTime(owner.updatedAt),
            ])
        }
    }

    /// The survivor each merged-away record points at (`MasterRecordId`). The dataset records
    /// merges the other way round, on the survivor (`hs_merged_object_ids`).
    private func masters(_ object: String, prefix: String) -> [Int: SFValue] {
        var result: [Int: SFValue] = [:]
        for record in (data.objects[object] ?? [:]).values {
            for absorbed in (record.properties["hs_merged_object_ids"] ?? "").split(separator: ";") {
                if let id = Int(absorbed.trimmingCharacters(in: .whitespaces)) { result[id] = .id(prefix, record.id) }
            }
        }
        return result
    }

    func accounts() -> [SObjectRow] {
        let masters = masters("companies", prefix: SalesforceID.account)
        return sorted("companies").map { company in
            row(company, [
                "Id": .id(SalesforceID.account, company.id), "Name": .text(company.properties["name"]),
                "Website": .text(company.properties["domain"]), "OwnerId": owner(company.properties["hubspot_owner_id"]),
                "MasterRecordId": masters[company.id] ?? .null,
            ])
        }
    }

    func contacts() -> [SObjectRow] {
        let masters = masters("contacts", prefix: SalesforceID.contact)
        return sorted("contacts").map { contact in
            let first = contact.properties["firstname"], last = contact.properties["lastname"]
            return row(contact, [
                "Id": .id(SalesforceID.contact, contact.id), "FirstName": .text(first), "LastName": .text(last),
                "Name": .text([first, last].compactMap { $0 }.joined(separator: " ")), "Email": .text(contact.properties["email"]),
                "AccountId": .id(SalesforceID.account, contact.properties["associatedcompanyid"].flatMap { Int($0) }),
                "OwnerId": owner(contact.properties["hubspot_owner_id"]), "MasterRecordId": masters[contact.id] ?? .null,
            ])
        }
    }

    func opportunities() -> [SObjectRow] {
        let day: Int64 = 86_400_000
        return sorted("deals").map { deal in
            let stage = deal.properties["dealstage"] ?? ""
            let created = millis(deal.properties["createdate"]) ?? deal.createdAt
            // CloseDate is required: the actual close, or the expected one for open opportunities.
            let close = millis(deal.properties["closedate"]) ?? created + 90 * day
            return row(deal, [
                "Id": .id(SalesforceID.opportunity, deal.id), "Name": .text(deal.properties["dealname"]),
                "Amount": deal.properties["amount"].flatMap { Decimal(string: $0, locale: Locale(identifier: "en_US_POSIX")) }.map { .number($0) } ?? .null,
                "CurrencyIsoCode": .text(deal.properties["deal_currency_code"]), "StageName": .string(SalesforceStage.name(stage)),
                "OwnerId": owner(deal.properties["hubspot_owner_id"]),
                "AccountId": .id(SalesforceID.account, data.associations["deals->companies"]?[deal.id]?.first),
                "CreatedDate": .dateTime(created), "CloseDate": .date(close - close % day),
                "IsClosed": .bool(stage == "closedwon" || stage == "closedlost"), "IsWon": .bool(stage == "closedwon"),
                "LastModifiedDate": .dateTime(stamp(deal)), "Gross_Margin__c": .null,
            ])
        }
    }

    /// One row per stage a deal entered (the simulator records no amount-only changes).
    func opportunityHistory() -> [SObjectRow] {
        sorted("deals").flatMap { deal in
            deal.stageHistory.enumerated().map { index, entry in
                SObjectRow(fields: [
                    "Id": .id(SalesforceID.opportunityHistory, deal.id * 1000 + index),
                    "OpportunityId": .id(SalesforceID.opportunity, deal.id), "StageName": .string(SalesforceStage.name(entry.0)),
                    "CreatedDate": .dateTime(entry.1), "SystemModstamp": .dateTime(entry.1), "IsDeleted": .bool(deal.archived),
                ])
            }
        }
    }

    /// Deal↔contact associations; deleting an opportunity deletes its contact roles.
    func contactRoles() -> [SObjectRow] {
        sorted("deals").flatMap { deal in
            (data.associations["deals->contacts"]?[deal.id] ?? []).enumerated().map { index, contact in
                let stamp = deal.archived ? max(deal.createdAt, deal.archivedAt ?? deal.createdAt) : deal.createdAt
                return SObjectRow(fields: [
                    "Id": .id(SalesforceID.contactRole, deal.id * 100 + index),
                    "OpportunityId": .id(SalesforceID.opportunity, deal.id), "ContactId": .id(SalesforceID.contact, contact),
                    "Role": .string(index == 0 ? "Decision Maker" : "Influencer"), "IsPrimary": .bool(index == 0),
                    "CreatedDate": .dateTime(deal.createdAt), "SystemModstamp": .dateTime(stamp), "IsDeleted": .bool(deal.archived),
                ], deletedAt: deal.archived ? stamp : nil)
            }
        }
    }

    /// Calls, e-mails and tasks are Tasks told apart by `TaskSubtype`. Created tasks take ids from
    /// the dataset's shared counter, so they never collide with the generated calls.
    func tasks() -> [SObjectRow] {
        let kinds: [(object: String, subtype: String, subject: String)] = [
            ("calls", "Call", "hs_call_title"), ("emails", "Email", "hs_email_subject"), ("tasks", "Task", "hs_task_subject"),
        ]
        return kinds.flatMap { kind in
            sorted(kind.object).map { record in
                let at = millis(record.properties["hs_timestamp"])
                let done = kind.subtype != "Task" || record.properties["hs_task_status"] == "COMPLETED"
                return row(record, [
                    "Id": .id(SalesforceID.task, record.id), "Subject": .text(record.properties[kind.subject]),
                    "Description": .text(record.properties["hs_task_body"]),
                    "WhoId": .id(SalesforceID.contact, data.associations["\(kind.object)->contacts"]?[record.id]?.first),
                    "WhatId": .id(SalesforceID.opportunity, data.associations["\(kind.object)->deals"]?[record.id]?.first),
                    "OwnerId": owner(record.properties["hubspot_owner_id"]), "TaskSubtype": .string(kind.subtype),
                    "ActivityDate": at.map { .date($0 - $0 % 86_400_000) } ?? .null,
                    "CompletedDateTime": done ? (at.map { .dateTime($0) } ?? .null) : .null,
                    "Status": .string(done ? "Completed" : "Not Started"),
                    "Priority": .string(record.properties["hs_task_priority"] == "HIGH" ? "High" : "Normal"),
                ])
            }
        }
    }

    func events() -> [SObjectRow] {
        sorted("meetings").map { meeting in
            let at = millis(meeting.properties["hs_timestamp"]) ?? meeting.createdAt
            return row(meeting, [
                "Id": .id(SalesforceID.event, meeting.id), "Subject": .text(meeting.properties["hs_meeting_title"]),
                "WhoId": .id(SalesforceID.contact, data.associations["meetings->contacts"]?[meeting.id]?.first),
                "WhatId": .id(SalesforceID.opportunity, data.associations["meetings->deals"]?[meeting.id]?.first),
                "OwnerId": owner(meeting.properties["hubspot_owner_id"]), "ActivityDate": .date(at - at % 86_400_000),
                "ActivityDateTime": .dateTime(at), "StartDateTime": .dateTime(at), "EndDateTime": .dateTime(at + 1_800_000),
                "DurationInMinutes": .number(30),
            ])
        }
    }

    /// The demo campaigns, with the costs a marketing team would record, dated by their first touch.
    func campaigns() -> [SObjectRow] {
        let costs: [Decimal] = [1_500_000, 950_000, 3_200_000, 400_000]
        let types = ["Content", "Webinar", "Trade Show", "Advertisement"]
        let spans = campaignSpans()
        return SimulatedDataset.campaigns.enumerated().map { index, name in
            let span = spans[name] ?? (first: data.owners.first?.createdAt ?? 0, last: data.owners.first?.createdAt ?? 0)
            let day: Int64 = 86_400_000
            return SObjectRow(fields: [
                "Id": .id(SalesforceID.campaign, index + 1), "Name": .string(name), "Type": .string(types[index % types.count]),
                "Status": .string("Completed"), "StartDate": .date(span.first - span.first % day),
                "EndDate": .date(span.last - span.last % day), "IsActive": .bool(false),
                "ActualCost": .number(costs[index % costs.count]), "BudgetedCost": .number(costs[index % costs.count] * 11 / 10),
                "CurrencyIsoCode": .string("JPY"), "CreatedDate": .dateTime(span.first - 14 * day),
                "SystemModstamp": .dateTime(span.first), "IsDeleted": .bool(false),
            ])
        }
    }

    /// A contact joined a campaign when it first engaged with it: one member per campaign and contact.
    func campaignMembers() -> [SObjectRow] {
        var joined: [Int: [Int: Int64]] = [:]   // campaign index → contact → first touch
        let indexes = Dictionary(uniqueKeysWithValues: SimulatedDataset.campaigns.enumerated().map { ($1, $0) })
        for event in data.events {
            guard let campaign = event.campaign.flatMap({ indexes[$0] }),
                  let contact = event.contact.external_id.flatMap({ $0.split(separator: ":").last.flatMap { Int($0) } }),
                  let at = millis(event.occurred_at) else { continue }
            joined[campaign, default: [:]][contact] = min(joined[campaign]?[contact] ?? .max, at)
        }
        var rows: [SObjectRow] = []
        for campaign in joined.keys.sorted() {
            for (contact, at) in joined[campaign]!.sorted(by: { $0.key < $1.key }) {
                rows.append(SObjectRow(fields: [
                    "Id": .id(SalesforceID.campaignMember, rows.count + 1), "CampaignId": .id(SalesforceID.campaign, campaign + 1),
                    "ContactId": .id(SalesforceID.contact, contact), "LeadId": .null, "Status": .string("Responded"),
                    "HasResponded": .bool(true), "CreatedDate": .dateTime(at), "SystemModstamp": .dateTime(at), "IsDeleted": .bool(false),
                ]))
            }
        }
        return rows
    }

    private func campaignSpans() -> [String: (first: Int64, last: Int64)] {
        var spans: [String: (first: Int64, last: Int64)] = [:]
        for event in data.events {
            guard let campaign = event.campaign, let at = millis(event.occurred_at) else { continue }
            let span = spans[campaign] ?? (at, at)
            spans[campaign] = (min(span.first, at), max(span.last, at))
        }
        return spans
    }
}
