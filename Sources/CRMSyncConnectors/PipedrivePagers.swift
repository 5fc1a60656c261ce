import CRMSyncCore
import Foundation

/// Pages through one v2 list by update time without trusting what Pipedrive's cursor keys on.
///
/// Each page is asked for afresh with `updated_since` = the last stamp seen (`>=`), skipping the
/// ids already read at that stamp, so records edited during the listing (which would shift an
/// offset) and a cursor that keys on the stamp alone (which would jump over the rest of a tie) lose
/// nothing. Stamps are whole seconds and bulk edits give hundreds of records one second: when a
/// whole page shares one stamp, that second is read on its own, `updated_since=S&updated_until=S+1s`
/// sorted by id, whose cursor is an unambiguous keyset. The sync cursor's ids-at-stamp carry the
/// same skip into the next run.
struct PipedriveListPager: ChangePager {
    enum Mode {
        case byUpdateTime
        /// Reading the one second `stamp` by id, from `cursor`.
        case oneSecond(stamp: Date, cursor: String?)
    }

    let connector: PipedriveConnector
    let stream: SyncStream
    var anchor: Date?
    var seenAtAnchor: Set<String>
    var mode = Mode.byUpdateTime
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
        switch mode {
        case .byUpdateTime:
            let (items, more) = try await fetch(connector.listURL(object, since: anchor, cursor: nil))
            guard let last = items.last?.at else {
                finished = true
                return nil
            }
            let fresh = items.filter { !($0.at == anchor && seenAtAnchor.contains($0.id)) }
            let atLast = Set(items.filter { $0.at == last }.map(\.id))
            let stuck = last == anchor
            if !stuck { seenAtAnchor = [] }
            anchor = last
            seenAtAnchor.formUnion(atLast)
            if !more {
                finished = true
            } else if stuck || items.allSatisfy({ $0.at == last }) {
                // Re-anchoring cannot get past this second: read it on its own.
                mode = .oneSecond(stamp: last, cursor: nil)
            }
            return try await page(fresh)
        case .oneSecond(let stamp, let cursor):
            let url = connector.listURL(object, since: stamp, until: stamp.addingTimeInterval(1), sortBy: "id", cursor: cursor)
            let (items, _, next) = try await fetchWithCursor(url)
            let fresh = items.filter { !($0.at == stamp && seenAtAnchor.contains($0.id)) }
            seenAtAnchor.formUnion(items.filter { $0.at == stamp }.map(\.id))
            if let next {
                mode = .oneSecond(stamp: stamp, cursor: next)
            } else {
                // The second is done: go on after it.
                mode = .byUpdateTime
                anchor = stamp.addingTimeInterval(1)
                seenAtAnchor = []
            }
            return try await page(fresh)
        }
    }

    // MARK: Fetching and converting

    /// One listed object with its id and parsed `update_time`.
    struct Item {
        enum Body {
            case organization(PipedriveWire.Organization)
            case person(PipedriveWire.Person)
            case deal(PipedriveWire.Deal)
            case activity(PipedriveWire.Activity)
        }
        var id: String
        var at: Date
        var body: Body
    }

    func fetch(_ url: String) async throws -> (items: [Item], more: Bool) {
        let (items, more, _) = try await fetchWithCursor(url)
        return (items, more)
    }

    func fetchWithCursor(_ url: String) async throws -> (items: [Item], more: Bool, next: String?) {
        func items<T: Decodable>(_ type: T.Type, id: (T) -> Int64, stamp: (T) -> String?, body: (T) -> Item.Body) async throws -> ([Item], String?) {
            let page: PipedriveWire.Envelope<[T]> = try await connector.get(url)
            let items = (page.data ?? []).compactMap { object in
                PipedriveConnector.stamp(stamp(object)).map { Item(id: String(id(object)), at: $0, body: body(object)) }
            }
            return (items, page.additionalData?.nextCursor)
        }
        let (list, next): ([Item], String?)
        switch stream.objectType {
        case .accounts: (list, next) = try await items(PipedriveWire.Organization.self, id: \.id, stamp: \.update_time, body: Item.Body.organization)
        case .contacts: (list, next) = try await items(PipedriveWire.Person.self, id: \.id, stamp: \.update_time, body: Item.Body.person)
        case .activities: (list, next) = try await items(PipedriveWire.Activity.self, id: \.id, stamp: \.update_time, body: Item.Body.activity)
        default: (list, next) = try await items(PipedriveWire.Deal.self, id: \.id, stamp: \.update_time, body: Item.Body.deal)
        }
        return (list, next != nil, next)
    }

    func page(_ items: [Item]) async throws -> ChangePage {
        var batch = RecordBatch()
        var deals: [(PipedriveWire.Deal, Date)] = []
        for item in items {
            switch item.body {
            case .organization(let org): batch.accounts.append(connector.account(org, at: item.at))
            case .person(let person): batch.contacts.append(connector.contact(person, at: item.at))
            case .activity(let activity): batch.activities.append(connector.activity(activity, at: item.at))
            case .deal(let deal): deals.append((deal, item.at))
            }
        }
        if !deals.isEmpty {
            let histories = try await connector.histories(for: deals.map(\.0))
            batch.deals = deals.map { deal, at in connector.deal(deal, at: at, history: histories[deal.id] ?? []) }
        }
        let stamps = items.map { (id: $0.id, modifiedAt: $0.at) }
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
