import CRMSyncCore
import Foundation

/// Salesforce records mapped onto the CRM-neutral domain. Ids are Salesforce's 18-character ids,
/// unique across objects, so Tasks and Events share the activities table without a prefix.
struct SalesforceRecords {
    typealias Record = SalesforceWire.Record
    let marginField: String?

    static let opportunityPrefix = "006"

    func batch(stream: SyncStream, records: [Record]) -> RecordBatch {
        var batch = RecordBatch()
        // Contact roles arrive as rows of their own: writing an opportunity leaves its links alone.
        batch.dealsCarryContactLinks = false
        switch stream.key {
        case "User": batch.owners = records.compactMap(owner)
        case "Account": batch.accounts = records.compactMap(account)
        case "Contact", "Lead": batch.contacts = records.compactMap(contact)
        case "Campaign": batch.campaigns = records.compactMap(campaign)
        case "Opportunity": batch.deals = records.compactMap(deal)
        case "OpportunityHistory": batch.stageChanges = records.compactMap(stageChange)
        case "OpportunityContactRole": batch.dealContactLinks = records.compactMap(contactRole)
        case "Task", "Event": batch.activities = records.compactMap(activity)
        case "CampaignMember": batch.campaignMembers = records.compactMap(member)
        default: break
        }
        return batch
    }

    private func stamp(_ record: Record) -> Date? { record.date("SystemModstamp") }

    private func fullName(_ record: Record) -> String? {
        let name = [record.string("FirstName"), record.string("LastName")].compactMap { $0 }.joined(separator: " ")
        return name.isEmpty ? record.string("Name") : name
    }

    func owner(_ record: Record) -> CRMOwner? {
        guard let at = stamp(record) else { return nil }
        return CRMOwner(externalID: record.id, email: record.string("Email"), name: fullName(record), modifiedAt: at)
    }

    func account(_ record: Record) -> CRMAccount? {
        guard let at = stamp(record) else { return nil }
        return CRMAccount(externalID: record.id, name: record.string("Name"), domain: record.string("Website"),
                          owner: record.string("OwnerId"), modifiedAt: at)
    }

    /// Contacts and Leads both become contacts; a Lead keeps its company as text and its status
    /// as the lifecycle stage. A converted Lead lives on as the Contact it became, so it counts as
    /// merged into that Contact rather than as a second person.
    func contact(_ record: Record) -> CRMContact? {
        guard let at = stamp(record) else { return nil }
        let isLead = record.fields["Company"] != nil || record.fields["Status"] != nil
        let convertedTo = record.bool("IsConverted") ? record.string("ConvertedContactId") : nil
        return CRMContact(externalID: record.id, email: record.string("Email"), name: fullName(record),
                          company: record.string("Company"), accountID: record.string("AccountId"),
                          owner: record.string("OwnerId"), lifecycleStage: isLead ? record.string("Status").map { "lead: \($0)" } : nil,
                          modifiedAt: at, deleted: convertedTo != nil, mergedInto: convertedTo)
    }

    func campaign(_ record: Record) -> CRMCampaign? {
        guard let at = stamp(record), let name = record.string("Name") else { return nil }
        return CRMCampaign(externalID: record.id, name: name, actualCost: record.decimal("ActualCost"),
                           budgetedCost: record.decimal("BudgetedCost"), currency: record.string("CurrencyIsoCode"),
                           startDate: record.date("StartDate"), modifiedAt: at)
    }

    func deal(_ record: Record) -> CRMDeal? {
        guard let at = stamp(record) else { return nil }
        // CloseDate is the expected date until the opportunity closes.
        let closed = record.bool("IsClosed")
        return CRMDeal(
            externalID: record.id, name: record.string("Name"), amount: record.decimal("Amount"),
            currency: record.string("CurrencyIsoCode"), pipeline: nil, stage: record.string("StageName"),
            owner: record.string("OwnerId"), createdAt: record.date("CreatedDate"),
            closedAt: closed ? record.date("CloseDate") : nil, modifiedAt: at,
            grossMargin: marginField.flatMap { record.decimal($0) },
            accountIDs: record.string("AccountId").map { [$0] } ?? [])
    }

    /// The row's CreatedDate is when the opportunity entered the stage, at Salesforce's own time.
    func stageChange(_ record: Record) -> DealStageChange? {
        guard let deal = record.string("OpportunityId"), let stage = record.string("StageName"),
              let at = record.date("CreatedDate") ?? stamp(record) else { return nil }
        return DealStageChange(dealID: deal, pipeline: nil, change: StageChange(stage: stage, enteredAt: at))
    }

    func contactRole(_ record: Record) -> DealContactLink? {
        guard let deal = record.string("OpportunityId"), let contact = record.string("ContactId") else { return nil }
        return DealContactLink(dealID: deal, contactID: contact, removed: record.bool("IsDeleted"))
    }

    func activity(_ record: Record) -> CRMActivity? {
        guard let at = stamp(record) else { return nil }
        let isEvent = record.fields["StartDateTime"] != nil || record.fields["ActivityDateTime"] != nil
        let kind: ActivityKind
        if isEvent {
            kind = .meeting
        } else {
            switch record.string("TaskSubtype") {
            case "Call": kind = .call
            case "Email", "ListEmail": kind = .email
            default: kind = .task
            }
        }
        let occurred = isEvent
            ? record.date("StartDateTime") ?? record.date("ActivityDateTime")
            : record.date("CompletedDateTime") ?? record.date("ActivityDate")
        let what = record.string("WhatId")
        return CRMActivity(
            externalID: record.id, kind: kind, subject: record.string("Subject"), owner: record.string("OwnerId"),
            contactIDs: record.string("WhoId").map { [$0] } ?? [],
            dealIDs: what.flatMap { $0.hasPrefix(Self.opportunityPrefix) ? [$0] : nil } ?? [],
            occurredAt: occurred ?? record.date("CreatedDate") ?? at, modifiedAt: at, deleted: record.bool("IsDeleted"))
    }

    func member(_ record: Record) -> CRMCampaignMember? {
        guard let at = stamp(record), let campaign = record.string("CampaignId"),
              let person = record.string("ContactId") ?? record.string("LeadId") else { return nil }
        return CRMCampaignMember(externalID: record.id, campaignID: campaign, contactID: person, status: record.string("Status"),
                                 joinedAt: record.date("CreatedDate") ?? at, modifiedAt: at, deleted: record.bool("IsDeleted"))
    }
}
