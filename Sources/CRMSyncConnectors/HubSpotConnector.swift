import CRMSyncCore
import Foundation

/// HubSpot CRM v3/v4: search endpoints sorted on the last-modified property, re-anchored on every
/// page so neither the 10,000-result ceiling nor records modified mid-sync can lose a record;
/// batch reads for stage history (`propertiesWithHistory=dealstage`) and v4 associations.
public struct HubSpotConnector: CRMConnector {
    public let name: String
    public let kind = CRMKind.hubspot
    public let baseURL: String
    public let http: CRMHTTPClient
    public let pageSize: Int
    public let marginField: String?

    public init(name: String, baseURL: String, http: CRMHTTPClient, pageSize: Int = 200, marginField: String? = nil) {
        self.name = name
        self.baseURL = baseURL
        self.http = http
        self.pageSize = min(max(pageSize, 1), 200)
        self.marginField = marginField
    }

    public var streams: [SyncStream] {
        [.init("owners", .owners), .init("companies", .accounts), .init("contacts", .contacts), .init("deals", .deals)]
            + Self.engagements.map { SyncStream($0.object, .activities) }
    }

    static let engagements: [(object: String, kind: ActivityKind)] = [
        ("calls", .call), ("meetings", .meeting), ("emails", .email), ("tasks", .task),
    ]

    // MARK: Wire format

    struct SearchRequest: Encodable {
        struct Filter: Encodable { var propertyName: String; var `operator`: String; var value: String }
        struct FilterGroup: Encodable { var filters: [Filter] }
        struct Sort: Encodable { var propertyName: String; var direction: String }
        var filterGroups: [FilterGroup]
        var sorts: [Sort]
        var properties: [String]
        var limit: Int
        var after: String?
    }

    struct Object: Decodable {
        var id: String
        var properties: [String: String?]
        var createdAt: String?
        var updatedAt: String?
        var archived: Bool?
        var archivedAt: String?

        func value(_ key: String) -> String? {
            guard let entry = properties[key], let value = entry, !value.isEmpty else { return nil }
            return value
        }
    }

    struct SearchResponse: Decodable {
        struct Paging: Decodable { struct Next: Decodable { var after: String }; var next: Next? }
        var total: Int?
        var results: [Object]
        var paging: Paging?
    }

    struct ListResponse: Decodable {
        var results: [Object]
        var paging: SearchResponse.Paging?
    }

    struct HistoryResponse: Decodable {
        struct Entry: Decodable { var value: String?; var timestamp: String }
        struct Result: Decodable {
            var id: String
            var propertiesWithHistory: [String: [Entry]]?
        }
        var results: [Result]
    }

    struct AssociationResponse: Decodable {
        struct To: Decodable {
            var toObjectId: FlexibleID
        }
        struct From: Decodable { var id: String }
        struct Result: Decodable { var from: From; var to: [To] }
        var results: [Result]
    }

    struct OwnersResponse: Decodable {
        struct Owner: Decodable {
            var id: String
            var email: String?
            var firstName: String?
            var lastName: String?
            var updatedAt: String?
            var archived: Bool?
        }
        var results: [Owner]
        var paging: SearchResponse.Paging?
    }

    struct ErrorBody: Decodable {
        var status: String?
        var message: String?
        var category: String?
    }

    /// HubSpot ids arrive as strings in v3 and as numbers in v4 associations.
    struct FlexibleID: Decodable {
        var value: String
        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let text = try? container.decode(String.self) { value = text } else { value = String(try container.decode(Int64.self)) }
        }
    }

    // MARK: Object types

    struct Spec: Sendable {
        var object: String
        var stampProperty: String
        var properties: [String]
    }

    func spec(for stream: SyncStream) -> Spec? {
        switch stream.objectType {
        case .accounts:
            Spec(object: "companies", stampProperty: "hs_lastmodifieddate",
                 properties: ["name", "domain", "hubspot_owner_id", "hs_lastmodifieddate", "hs_merged_object_ids"])
        case .contacts:
            Spec(object: "contacts", stampProperty: "lastmodifieddate",
                 properties: ["email", "firstname", "lastname", "company", "hubspot_owner_id", "lifecyclestage",
                              "associatedcompanyid", "lastmodifieddate", "hs_merged_object_ids"])
        case .deals:
            Spec(object: "deals", stampProperty: "hs_lastmodifieddate",
                 properties: ["dealname", "amount", "deal_currency_code", "pipeline", "dealstage", "hubspot_owner_id",
                              "createdate", "closedate", "hs_lastmodifieddate", "hs_merged_object_ids"]
                    + (marginField.map { [$0] } ?? []))
        case .activities:
            Spec(object: stream.key, stampProperty: "hs_lastmodifieddate",
                 properties: ["hs_timestamp", "hubspot_owner_id", "hs_lastmodifieddate", "hs_call_title",
                              "hs_meeting_title", "hs_email_subject", "hs_task_subject"])
        default:
            nil
        }
    }

    public func pager(for stream: SyncStream, anchor: Date?, cursor: SyncCursor) -> any ChangePager {
        if let spec = spec(for: stream) {
            return SearchPager(connector: self, stream: stream, spec: spec, anchor: anchor, cursor: cursor)
        }
        return OwnerPager(connector: self, anchor: anchor)
    }

    public func deletions(for stream: SyncStream, since: Date?) async throws -> [Deletion] {
        guard let spec = spec(for: stream) else { return [] }
        var after: String?
        var result: [Deletion] = []
        repeat {
            var url = "\(baseURL)/crm/v3/objects/\(spec.object)?archived=true&limit=100"
            if let after { url += "&after=\(after)" }
            let page = try await http.json(.init(url: url), as: ListResponse.self, classify: classify)
            for object in page.results {
                let at = object.archivedAt.flatMap(CRMTimestamp.parse) ?? object.updatedAt.flatMap(CRMTimestamp.parse) ?? Date(timeIntervalSince1970: 0)
                if let since, at < since { continue }
                let id = stream.objectType == .activities ? "\(spec.object):\(object.id)" : object.id
                result.append(Deletion(objectType: stream.objectType, externalID: id, deletedAt: at))
            }
            after = page.paging?.next?.after
        } while after != nil
        return result
    }

    struct PipelinesResponse: Decodable {
        struct Pipeline: Decodable {
            struct Stage: Decodable { var id: String; var label: String?; var displayOrder: Int? }
            var id: String
            var label: String?
            var stages: [Stage]
        }
        var results: [Pipeline]
    }

    func classify(_ response: CRMHTTPClient.Response) -> ConnectorError {
        let body = try? JSONDecoder().decode(ErrorBody.self, from: response.body)
        let message = [body?.category, body?.message].compactMap { $0 }.joined(separator: ": ")
        switch response.status {
        case 401, 403:
            return .authentication(connector: name, message: message.isEmpty ? "HTTP \(response.status)" : message)
        default:
            return .http(connector: name, status: response.status, message: message.isEmpty ? "no error body" : message)
        }
    }

    func search(object: String, request: SearchRequest) async throws -> SearchResponse {
        let body = try JSONEncoder().encode(request)
        return try await http.json(
            .init(method: .POST, url: "\(baseURL)/crm/v3/objects/\(object)/search", body: body, usesSearchLimit: true),
            as: SearchResponse.self, classify: classify)
    }

    func stageHistory(dealIDs: [String]) async throws -> [String: [StageChange]] {
        var result: [String: [StageChange]] = [:]
        // Batch reads that ask for property history take at most 50 inputs.
        for chunk in dealIDs.chunked(50) {
            let body = try JSONSerialization.data(withJSONObject: [
                "inputs": chunk.map { ["id": $0] }, "properties": ["dealstage"], "propertiesWithHistory": ["dealstage"],
            ])
            let response = try await http.json(
                .init(method: .POST, url: "\(baseURL)/crm/v3/objects/deals/batch/read", body: body),
                as: HistoryResponse.self, classify: classify)
            for item in response.results {
                // HubSpot lists history newest first; reversed, entries that share a timestamp keep
                // HubSpot's order (a sort on the timestamp could swap them).
                let entries = item.propertiesWithHistory?["dealstage"] ?? []
                result[item.id] = entries.reversed().compactMap { entry in
                    guard let value = entry.value, !value.isEmpty, let at = CRMTimestamp.parse(entry.timestamp) else { return nil }
                    return StageChange(stage: value, enteredAt: at)
                }
            }
        }
        return result
    }

    func associations(from: String, to: String, ids: [String]) async throws -> [String: [String]] {
        var result: [String: [String]] = [:]
        for chunk in ids.chunked(1000) {
            let body = try JSONSerialization.data(withJSONObject: ["inputs": chunk.map { ["id": $0] }])
            let response = try await http.json(
                .init(method: .POST, url: "\(baseURL)/crm/v4/associations/\(from)/\(to)/batch/read", body: body),
                as: AssociationResponse.self, classify: classify)
            for item in response.results {
                result[item.from.id, default: []].append(contentsOf: item.to.map(\.toObjectId.value))
            }
        }
        return result
    }

    // MARK: Mapping HubSpot objects to the domain

    func decimal(_ text: String?) -> Decimal? {
        guard let text else { return nil }
        return Decimal(string: text, locale: Locale(identifier: "en_US_POSIX"))
    }

    static func merged(_ text: String?) -> [String] {
        (text ?? "").split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func stamp(_ object: Object, property: String) -> Date? {
        object.value(property).flatMap(CRMTimestamp.parse) ?? object.updatedAt.flatMap(CRMTimestamp.parse)
    }

    func records(stream: SyncStream, objects: [Object], spec: Spec) async throws -> RecordBatch {
        var batch = RecordBatch()
        switch stream.objectType {
        case .accounts:
            batch.accounts = objects.compactMap { object in
                guard let at = stamp(object, property: spec.stampProperty) else { return nil }
                return CRMAccount(externalID: object.id, name: object.value("name"), domain: object.value("domain"),
                                  owner: object.value("hubspot_owner_id"), modifiedAt: at, deleted: object.archived ?? false)
            }
            batch.deletions = mergeDeletions(objects, type: .accounts, spec: spec)
        case .contacts:
            batch.contacts = objects.compactMap { object in
                guard let at = stamp(object, property: spec.stampProperty) else { return nil }
                let name = [object.value("firstname"), object.value("lastname")].compactMap { $0 }.joined(separator: " ")
                return CRMContact(externalID: object.id, email: object.value("email"), name: name.isEmpty ? nil : name,
                                  company: object.value("company"), accountID: object.value("associatedcompanyid"),
                                  owner: object.value("hubspot_owner_id"), lifecycleStage: object.value("lifecyclestage"),
                                  modifiedAt: at, deleted: object.archived ?? false)
            }
            batch.deletions = mergeDeletions(objects, type: .contacts, spec: spec)
        case .deals:
            let ids = objects.map(\.id)
            async let history = stageHistory(dealIDs: ids)
            async let contacts = associations(from: "deals", to: "contacts", ids: ids)
            async let companies = associations(from: "deals", to: "companies", ids: ids)
            let (histories, contactLinks, companyLinks) = try await (history, contacts, companies)
            batch.deals = objects.compactMap { object in
                guard let at = stamp(object, property: spec.stampProperty) else { return nil }
                var changes = histories[object.id] ?? []
                if changes.isEmpty, let stage = object.value("dealstage"),
                   let created = object.value("createdate").flatMap(CRMTimestamp.parse) {
                    changes = [StageChange(stage: stage, enteredAt: created)]
                }
                return CRMDeal(
                    externalID: object.id, name: object.value("dealname"), amount: decimal(object.value("amount")),
                    currency: object.value("deal_currency_code"), pipeline: object.value("pipeline"),
                    stage: object.value("dealstage"), owner: object.value("hubspot_owner_id"),
                    createdAt: object.value("createdate").flatMap(CRMTimestamp.parse),
                    closedAt: object.value("closedate").flatMap(CRMTimestamp.parse), modifiedAt: at,
                    deleted: object.archived ?? false, mergedFrom: Self.merged(object.value("hs_merged_object_ids")),
                    grossMargin: marginField.flatMap { decimal(object.value($0)) },
                    contactIDs: contactLinks[object.id] ?? [], accountIDs: companyLinks[object.id] ?? [],
                    stageHistory: changes)
            }
        case .activities:
            let kind = Self.engagements.first { $0.object == spec.object }?.kind ?? .task
            let ids = objects.map(\.id)
            async let contacts = associations(from: spec.object, to: "contacts", ids: ids)
            async let deals = associations(from: spec.object, to: "deals", ids: ids)
            let (contactLinks, dealLinks) = try await (contacts, deals)
            batch.activities = objects.compactMap { object in
                guard let at = stamp(object, property: spec.stampProperty) else { return nil }
                let subject = ["hs_call_title", "hs_meeting_title", "hs_email_subject", "hs_task_subject"].lazy
                    .compactMap { object.value($0) }.first
                return CRMActivity(
                    externalID: "\(spec.object):\(object.id)", kind: kind, subject: subject,
                    owner: object.value("hubspot_owner_id"), contactIDs: contactLinks[object.id] ?? [],
                    dealIDs: dealLinks[object.id] ?? [],
                    occurredAt: object.value("hs_timestamp").flatMap(CRMTimestamp.parse) ?? at, modifiedAt: at,
                    deleted: object.archived ?? false)
            }
        default:
            break
        }
        return batch
    }

    private func mergeDeletions(_ objects: [Object], type: ObjectType, spec: Spec) -> [Deletion] {
        objects.flatMap { object in
            Self.merged(object.value("hs_merged_object_ids")).map {
                Deletion(objectType: type, externalID: $0, deletedAt: stamp(object, property: spec.stampProperty) ?? Date(timeIntervalSince1970: 0), mergedInto: object.id)
            }
        }
    }
}

/// Pages through one search endpoint, re-anchoring the `>=` filter at the last stamp seen on every
/// page, so neither the 10,000-result ceiling nor records modified mid-sync (which shift offsets)
/// can lose a record. `after` is only used inside a group of records sharing one millisecond.
struct SearchPager: ChangePager {
    let connector: HubSpotConnector
    let stream: SyncStream
    let spec: HubSpotConnector.Spec
    var anchor: Date?
    var seenAtAnchor: Set<String>
    var after: String?
    var finished = false

    init(connector: HubSpotConnector, stream: SyncStream, spec: HubSpotConnector.Spec, anchor: Date?, cursor: SyncCursor) {
        self.connector = connector
        self.stream = stream
        self.spec = spec
        self.anchor = anchor
        seenAtAnchor = anchor == cursor.modifiedAt ? cursor.idsAtModifiedAt : []
    }

    mutating func next() async throws -> ChangePage? {
        guard !finished else { return nil }
        var filters: [HubSpotConnector.SearchRequest.FilterGroup] = []
        if let anchor {
            filters = [.init(filters: [.init(propertyName: spec.stampProperty, operator: "GTE", value: String(CRMTimestamp.millis(anchor)))])]
        }
        let request = HubSpotConnector.SearchRequest(
            filterGroups: filters, sorts: [.init(propertyName: spec.stampProperty, direction: "ASCENDING")],
            properties: spec.properties, limit: connector.pageSize, after: after)
        let response = try await connector.search(object: spec.object, request: request)
        let stamped = response.results.compactMap { object in
            connector.stamp(object, property: spec.stampProperty).map { (object: object, at: $0) }
        }
        guard let last = stamped.last else {
            finished = true
            return nil
        }
        let fresh = stamped.filter { !($0.at == anchor && seenAtAnchor.contains($0.object.id)) }
        if last.at == anchor {
            // The whole page shares the anchor's millisecond: page through that group with `after`.
            seenAtAnchor.formUnion(stamped.map(\.object.id))
            after = response.paging?.next?.after
            finished = after == nil
        } else {
            anchor = last.at
            seenAtAnchor = Set(stamped.filter { $0.at == last.at }.map(\.object.id))
            after = nil
            finished = response.paging?.next == nil
        }
        let batch = try await connector.records(stream: stream, objects: fresh.map(\.object), spec: spec)
        let prefix = stream.objectType == .activities ? "\(spec.object):" : ""
        let stamps = fresh.map { (id: prefix + $0.object.id, modifiedAt: $0.at) }
        return ChangePage(batch: batch, stamps: stamps, ids: stamps.map(\.id))
    }
}

/// Owners have no search endpoint; the list is short, so it is read whole and filtered.
struct OwnerPager: ChangePager {
    let connector: HubSpotConnector
    let anchor: Date?
    var after: String?
    var finished = false

    init(connector: HubSpotConnector, anchor: Date?) {
        self.connector = connector
        self.anchor = anchor
    }

    mutating func next() async throws -> ChangePage? {
        guard !finished else { return nil }
        var url = "\(connector.baseURL)/crm/v3/owners?limit=100"
        if let after { url += "&after=\(after)" }
        let page = try await connector.http.json(.init(url: url), as: HubSpotConnector.OwnersResponse.self, classify: connector.classify)
        after = page.paging?.next?.after
        finished = after == nil
        var batch = RecordBatch()
        var stamps: [(id: String, modifiedAt: Date)] = []
        for owner in page.results {
            let at = owner.updatedAt.flatMap(CRMTimestamp.parse) ?? Date(timeIntervalSince1970: 0)
            if let anchor, at < anchor { continue }
            let name = [owner.firstName, owner.lastName].compactMap { $0 }.joined(separator: " ")
            batch.owners.append(CRMOwner(externalID: owner.id, email: owner.email, name: name.isEmpty ? nil : name,
                                         modifiedAt: at, deleted: owner.archived ?? false))
            stamps.append((owner.id, at))
        }
        stamps.sort { $0.modifiedAt < $1.modifiedAt }
        return ChangePage(batch: batch, stamps: stamps, ids: page.results.map(\.id))
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}

extension HubSpotConnector: PipelineListing {
    /// `GET /crm/v3/pipelines/deals`: every deal pipeline with its stages.
    public func pipelineStages() async throws -> [PipelineStage] {
        let page = try await http.json(.init(url: "\(baseURL)/crm/v3/pipelines/deals"), as: PipelinesResponse.self, classify: classify)
        return page.results.flatMap { pipeline in
            pipeline.stages.enumerated().map { index, stage in
                PipelineStage(pipeline: pipeline.id, pipelineLabel: pipeline.label, stage: stage.id, label: stage.label,
                              displayOrder: stage.displayOrder ?? index)
            }
        }
    }
}

