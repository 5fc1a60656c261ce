import CRMSyncCore
import Foundation

/// A follow-up the nurture engine asks a salesperson to do, in CRM-neutral terms. Ids are the
/// CRM's own (no `connector:` prefix).
public struct TaskDraft: Sendable, Equatable {
    public var subject: String
    public var body: String?
    public var due: Date?
    public var ownerID: String?
    public var contactID: String?
    public var dealID: String?

    public init(subject: String, body: String? = nil, due: Date? = nil, ownerID: String? = nil, contactID: String? = nil, dealID: String? = nil) {
        self.subject = subject
        self.body = body
        self.due = due
        self.ownerID = ownerID
        self.contactID = contactID
        self.dealID = dealID
    }
}

/// CRMs the outbox can create tasks in. Returns the CRM's id of the new task. Not idempotent on
/// the CRM's side (none of the three offers an idempotency key on these endpoints).
public protocol TaskWriter: Sendable {
    func createTask(_ draft: TaskDraft) async throws -> String
}

struct CreatedRecord: Decodable {
    var id: String
}

extension HubSpotConnector: TaskWriter {
    /// `POST /crm/v3/objects/tasks`, associated with the contact (type 204) and the deal (216).
    public func createTask(_ draft: TaskDraft) async throws -> String {
        var properties: [String: String] = ["hs_task_subject": draft.subject, "hs_task_status": "NOT_STARTED", "hs_task_type": "TODO"]
        properties["hs_task_body"] = draft.body
        properties["hubspot_owner_id"] = draft.ownerID
        properties["hs_timestamp"] = draft.due.map(CRMTimestamp.iso)
        var associations: [[String: Any]] = []
        for (id, type) in [(draft.contactID, 204), (draft.dealID, 216)] {
            guard let id else { continue }
            associations.append(["to": ["id": id], "types": [["associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type]]])
        }
        let body = try JSONSerialization.data(withJSONObject: ["properties": properties, "associations": associations], options: [.sortedKeys])
        return try await http.json(
            .init(method: .POST, url: "\(baseURL)/crm/v3/objects/tasks", body: body), as: CreatedRecord.self, classify: classify
        ).id
    }
}

extension SalesforceConnector: TaskWriter {
    /// `POST /services/data/vNN.N/sobjects/Task/`: `WhoId` the contact, `WhatId` the opportunity.
    public func createTask(_ draft: TaskDraft) async throws -> String {
        var fields: [String: String] = ["Subject": draft.subject, "Status": "Not Started", "Priority": "Normal"]
        fields["Description"] = draft.body
        fields["OwnerId"] = draft.ownerID
        fields["WhoId"] = draft.contactID
        fields["WhatId"] = draft.dealID
        fields["ActivityDate"] = draft.due.map { String(CRMTimestamp.iso($0).prefix(10)) }
        let body = try JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys])
        return try await http.json(
            .init(method: .POST, url: "\(restBase)/sobjects/Task/", body: body), as: CreatedRecord.self, classify: classify("create Task")
        ).id
    }
}

extension PipedriveConnector: TaskWriter {
    /// A Pipedrive activity of type `task` (`POST /api/v1/activities`).
    public func createTask(_ draft: TaskDraft) async throws -> String {
        try await createActivity(.init(
            subject: draft.subject, type: "task", due: draft.due, ownerID: draft.ownerID, dealID: draft.dealID,
            personID: draft.contactID, note: draft.body))
    }
}
