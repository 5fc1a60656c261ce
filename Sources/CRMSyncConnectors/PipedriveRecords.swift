import CRMSyncCore
import Foundation

/// Pipedrive objects mapped onto the domain records. Ids become strings; a deal's stage is its
/// effective stage (`won` / `lost` once closed, the stage id otherwise).
extension PipedriveConnector {
    static func stamp(_ text: String?) -> Date? { text.flatMap(CRMTimestamp.parse) }

    static func activityKind(_ type: String?) -> ActivityKind {
        switch type {
        case "call": .call
        case "meeting", "lunch": .meeting
        case "email": .email
        default: .task
        }
    }

    func account(_ org: PipedriveWire.Organization, at: Date) -> CRMAccount {
        CRMAccount(externalID: String(org.id), name: org.name, domain: nil, owner: org.owner_id?.value,
                   modifiedAt: at, deleted: org.is_deleted?.value ?? false)
    }

    func contact(_ person: PipedriveWire.Person, at: Date) -> CRMContact {
        let emails = person.emails ?? []
        let email = (emails.first { $0.primary?.value == true } ?? emails.first)?.value
        return CRMContact(externalID: String(person.id), email: email, name: person.name, company: nil,
                          accountID: person.org_id?.value, owner: person.owner_id?.value, modifiedAt: at,
                          deleted: person.is_deleted?.value ?? false)
    }

    func deal(_ deal: PipedriveWire.Deal, at: Date, history: [StageChange]) -> CRMDeal {
        let stage = PipedriveStageHistory.effective(stageID: deal.stage_id?.value, status: deal.status)
        let created = Self.stamp(deal.add_time)
        var changes = history
        if changes.isEmpty, let stage, let created { changes = [StageChange(stage: stage, enteredAt: created)] }
        return CRMDeal(
            externalID: String(deal.id), name: deal.title, amount: deal.value?.value, currency: deal.currency,
            pipeline: deal.pipeline_id?.value, stage: stage, owner: deal.owner_id?.value, createdAt: created,
            closedAt: Self.stamp(deal.close_time) ?? Self.stamp(deal.won_time) ?? Self.stamp(deal.lost_time),
            modifiedAt: at, deleted: deal.is_deleted?.value ?? (deal.status == "deleted"),
            grossMargin: marginField.flatMap { deal.custom_fields?[$0]?.value },
            contactIDs: deal.person_id.map { [$0.value] } ?? [], accountIDs: deal.org_id.map { [$0.value] } ?? [],
            stageHistory: changes)
    }

    func activity(_ activity: PipedriveWire.Activity, at: Date) -> CRMActivity {
        var contacts = (activity.participants ?? []).compactMap(\.person_id?.value)
        if contacts.isEmpty, let person = activity.person_id?.value { contacts = [person] }
        // Due date and time are UTC; an activity without a time is due at midnight.
        let due = activity.due_date.flatMap { date in
            CRMTimestamp.parse("\(date)T\(Self.clock(activity.due_time))Z")
        }
        return CRMActivity(
            externalID: String(activity.id), kind: Self.activityKind(activity.type), subject: activity.subject,
            owner: activity.owner_id?.value, contactIDs: contacts, dealIDs: activity.deal_id.map { [$0.value] } ?? [],
            occurredAt: due ?? Self.stamp(activity.add_time) ?? at, modifiedAt: at, deleted: activity.is_deleted?.value ?? false)
    }

    /// `HH:MM` or `HH:MM:SS` as `HH:MM:SS`.
    static func clock(_ text: String?) -> String {
        guard let text, !text.isEmpty else { return "00:00:00" }
        return text.count == 5 ? text + ":00" : String(text.prefix(8))
    }
}
