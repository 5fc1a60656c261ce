import CRMSyncCore
import Foundation

/// Pages through one v2 list sorted by `update_time`, from `updated_since` (>=) on, following
/// `next_cursor`. Pipedrive's cursor is a keyset on (update time, id), so neither edits during the
/// listing nor hundreds of records sharing one second (bulk edits) shift a page. Records the sync
/// cursor already holds at exactly the anchor second are skipped.
struct PipedriveListPager: ChangePager {
    let connector: PipedriveConnector
    let stream: SyncStream
    let anchor: Date?
    let seenAtAnchor: Set<String>
    var next: String?
    var finished = false

    init(connector: PipedriveConnector, stream: SyncStream, anchor: Date?, cursor: SyncCursor) {
        self.connector = connector
        self.stream = stream
        self.anchor = anchor
        seenAtAnchor = anchor != nil && anchor == cursor.modifiedAt ? cursor.idsAtModifiedAt : []
    }

    var object: String {
        switch stream.objectType {
        case .accounts: "organizations"
        case .contacts: "persons"
        case .activities: "activities"
        default: "deals"
        }
    }

    mutating func next() async throws -> ChangePage? {
        guard !finished else { return nil }
        let url = connector.listURL(object, since: anchor, cursor: next)
        var batch = RecordBatch()
        var stamps: [(id: String, modifiedAt: Date)] = []
        /// Keeps records with a stamp that the cursor does not already cover.
        func fresh(_ id: Int64, _ text: String?) -> Date? {
            guard let at = PipedriveConnector.stamp(text) else { return nil }
            if at == anchor, seenAtAnchor.contains(String(id)) { return nil }
            stamps.append((String(id), at))
            return at
        }
        let cursor: String?
        switch stream.objectType {
        case .accounts:
            let page: PipedriveWire.Envelope<[PipedriveWire.Organization]> = try await connector.get(url)
            batch.accounts = (page.data ?? []).compactMap { org in fresh(org.id, org.update_time).map { connector.account(org, at: $0) } }
            cursor = page.additionalData?.nextCursor
        case .contacts:
            let page: PipedriveWire.Envelope<[PipedriveWire.Person]> = try await connector.get(url)
            batch.contacts = (page.data ?? []).compactMap { person in fresh(person.id, person.update_time).map { connector.contact(person, at: $0) } }
            cursor = page.additionalData?.nextCursor
        case .activities:
            let page: PipedriveWire.Envelope<[PipedriveWire.Activity]> = try await connector.get(url)
            batch.activities = (page.data ?? []).compactMap { item in fresh(item.id, item.update_time).map { connector.activity(item, at: $0) } }
            cursor = page.additionalData?.nextCursor
        default:
            let page: PipedriveWire.Envelope<[PipedriveWire.Deal]> = try await connector.get(url)
            let deals = (page.data ?? []).compactMap { deal in fresh(deal.id, deal.update_time).map { (deal, $0) } }
            let histories = try await connector.histories(for: deals.map(\.0))
            batch.deals = deals.map { deal, at in connector.deal(deal, at: at, history: histories[deal.id] ?? []) }
            cursor = page.additionalData?.nextCursor
        }
        next = cursor
        finished = cursor == nil
        if stamps.isEmpty && finished { return nil }
        return ChangePage(batch: batch, stamps: stamps, ids: stamps.map(\.id))
    }
}

/// Users are a short v1 list without paging or an update filter: read whole, keep the changed.
struct PipedriveUserPager: ChangePager {
    let connector: PipedriveConnector
    let anchor: Date?
    var finished = false

    init(connector: PipedriveConnector, anchor: Date?) {
        self.connector = connector
        self.anchor = anchor
    }

    mutating func next() async throws -> ChangePage? {
        guard !finished else { return nil }
        finished = true
        let page: PipedriveWire.Envelope<[PipedriveWire.User]> = try await connector.get("\(connector.baseURL)/api/v1/users")
        let users = page.data ?? []
        var batch = RecordBatch()
        var stamps: [(id: String, modifiedAt: Date)] = []
        for user in users {
            let at = PipedriveConnector.stamp(user.modified) ?? PipedriveConnector.stamp(user.created) ?? Date(timeIntervalSince1970: 0)
            if let anchor, at < anchor { continue }
            batch.owners.append(CRMOwner(externalID: String(user.id), email: user.email, name: user.name, modifiedAt: at,
                                         deleted: !(user.active_flag?.value ?? true)))
            stamps.append((String(user.id), at))
        }
        stamps.sort { $0.modifiedAt < $1.modifiedAt }
        return ChangePage(batch: batch, stamps: stamps, ids: users.map { String($0.id) })
    }
}
