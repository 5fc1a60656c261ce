import CRMSyncCore
import Foundation
import Logging

/// Salesforce REST (`/services/data/vNN.N/`): one incremental SOQL query per object on
/// `SystemModstamp`, paged through its query locator (`nextRecordsUrl`) until `done`; deletes from
/// `sobjects/X/deleted/`. Stage history (`OpportunityHistory`) and deal↔contact links
/// (`OpportunityContactRole`) are objects of their own with their own cursors.
public struct SalesforceConnector: CRMConnector {
    public let name: String
    public let kind = CRMKind.salesforce
    /// `https://yourorg.my.salesforce.com` (scheme, host and port; `nextRecordsUrl` paths go after it).
    public let instanceURL: String
    public let apiVersion: String
    public let http: CRMHTTPClient
    public let pageSize: Int
    public let marginField: String?

    public init(
        name: String, instanceURL: String, http: CRMHTTPClient, pageSize: Int = 2000, apiVersion: String = "59.0",
        marginField: String? = nil
    ) {
        self.name = name
        var base = instanceURL
        while base.hasSuffix("/") { base.removeLast() }
        // Accept an instance URL given with the REST path already on it.
        if let range = base.range(of: "/services/data") { base = String(base[..<range.lowerBound]) }
        self.instanceURL = base
        self.apiVersion = apiVersion
        self.http = http
        // Salesforce pages hold 200 to 2,000 records (`Sforce-Query-Options: batchSize`).
        self.pageSize = min(max(pageSize, 200), 2000)
        self.marginField = marginField
    }

    var restBase: String { "\(instanceURL)/services/data/v\(apiVersion)" }

    // MARK: Objects

    struct Spec: Sendable {
        var object: String
        var fields: [String]
        /// `queryAll`: archived and deleted rows come back too (with `IsDeleted`): archived
        /// activities, and links whose removal `deleted/` could not place (it gives the row id,
        /// not the pair it linked).
        var includeDeleted = false
        /// Where `deleted/` entries go; nil when the object's deletions are not read there.
        var deletes: ObjectType?
        /// Whether records of this object can be merged (`MasterRecordId`).
        var merges: Bool { ["Account", "Contact", "Lead"].contains(object) }
    }

    public var streams: [SyncStream] {
        [
            .init("User", .owners), .init("Account", .accounts), .init("Contact", .contacts), .init("Lead", .contacts),
            .init("Campaign", .campaigns), .init("Opportunity", .deals), .init("OpportunityHistory", .stageHistory),
            .init("OpportunityContactRole", .dealContacts), .init("Task", .activities), .init("Event", .activities),
            .init("CampaignMember", .campaignMembers),
        ]
    }

    func spec(for stream: SyncStream) -> Spec {
        switch stream.key {
        case "User":
            Spec(object: "User", fields: ["Id", "FirstName", "LastName", "Email", "IsActive", "SystemModstamp"])
        case "Account":
            Spec(object: "Account", fields: ["Id", "Name", "Website", "OwnerId", "SystemModstamp"], deletes: .accounts)
        case "Contact":
            Spec(object: "Contact", fields: ["Id", "FirstName", "LastName", "Email", "AccountId", "OwnerId", "SystemModstamp"],
                 deletes: .contacts)
        case "Lead":
            Spec(object: "Lead", fields: ["Id", "FirstName", "LastName", "Email", "Company", "Status", "OwnerId", "IsConverted",
                                          "ConvertedContactId", "SystemModstamp"],
                 deletes: .contacts)
        case "Campaign":
            Spec(object: "Campaign", fields: ["Id", "Name", "ActualCost", "BudgetedCost", "CurrencyIsoCode", "StartDate", "SystemModstamp"])
        case "Opportunity":
            Spec(object: "Opportunity",
                 fields: ["Id", "Name", "Amount", "CurrencyIsoCode", "StageName", "OwnerId", "AccountId", "CreatedDate", "CloseDate",
                          "IsClosed", "SystemModstamp"] + (marginField.map { [$0] } ?? []),
                 deletes: .deals)
        case "OpportunityHistory":
            Spec(object: "OpportunityHistory", fields: ["Id", "OpportunityId", "StageName", "CreatedDate", "SystemModstamp"])
        case "OpportunityContactRole":
            Spec(object: "OpportunityContactRole", fields: ["Id", "OpportunityId", "ContactId", "IsDeleted", "SystemModstamp"],
                 includeDeleted: true)
        // Tasks and Events older than about a year are archived: only queryAll returns them.
        case "Task":
            Spec(object: "Task",
                 fields: ["Id", "Subject", "WhoId", "WhatId", "OwnerId", "TaskSubtype", "ActivityDate", "CompletedDateTime",
                          "CreatedDate", "IsDeleted", "SystemModstamp"],
                 includeDeleted: true, deletes: .activities)
        case "Event":
            Spec(object: "Event", fields: ["Id", "Subject", "WhoId", "WhatId", "OwnerId", "StartDateTime", "ActivityDateTime",
                                           "CreatedDate", "IsDeleted", "SystemModstamp"],
                 includeDeleted: true, deletes: .activities)
        default:
            Spec(object: "CampaignMember",
                 fields: ["Id", "CampaignId", "ContactId", "LeadId", "Status", "CreatedDate", "IsDeleted", "SystemModstamp"],
                 includeDeleted: true)
        }
    }

    public func pager(for stream: SyncStream, anchor: Date?, cursor: SyncCursor) -> any ChangePager {
        SOQLPager(connector: self, stream: stream, spec: spec(for: stream), anchor: anchor, cursor: cursor)
    }

    /// The incremental query. SOQL date-times carry whole seconds, so the filter starts at the
    /// anchor's second and the pager drops what lies before the anchor itself.
    func soql(_ spec: Spec, anchor: Date?) -> String {
        var text = "SELECT \(spec.fields.joined(separator: ", ")) FROM \(spec.object)"
        if let anchor { text += " WHERE SystemModstamp >= \(Self.soqlDateTime(anchor))" }
        return text + " ORDER BY SystemModstamp, Id"
    }

    static func soqlDateTime(_ date: Date) -> String {
        String(CRMTimestamp.iso(Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))).prefix(19)) + "Z"
    }

    func query(_ soql: String, spec: Spec) async throws -> SalesforceWire.QueryResponse {
        let encoded = soql.addingPercentEncoding(withAllowedCharacters: Self.queryValueAllowed) ?? soql
        let url = "\(restBase)/\(spec.includeDeleted ? "queryAll" : "query")/?q=\(encoded)"
        return try await http.json(
            .init(url: url, headers: [("Sforce-Query-Options", "batchSize=\(pageSize)")]),
            as: SalesforceWire.QueryResponse.self, classify: classify("query \(spec.object)"))
    }

    func more(_ path: String, spec: Spec) async throws -> SalesforceWire.QueryResponse {
        // `nextRecordsUrl` is a path on the instance, never a full URL.
        guard path.hasPrefix("/services/data/") else {
            throw ConnectorError.malformedResponse(connector: name, what: "query \(spec.object): nextRecordsUrl '\(path.prefix(80))' is not a REST path")
        }
        return try await http.json(
            .init(url: instanceURL + path, headers: [("Sforce-Query-Options", "batchSize=\(pageSize)")]),
            as: SalesforceWire.QueryResponse.self, classify: classify("query \(spec.object)"))
    }

    /// `deleted/` reaches back 15 days and counts whole minutes; the window is widened to at least
    /// two minutes so it is never empty.
    public func deletions(for stream: SyncStream, since: Date?) async throws -> [Deletion] {
        let spec = spec(for: stream)
        guard let type = spec.deletes else { return [] }
        let end = Date()
        let earliest = end.addingTimeInterval(-15 * 86_400 + 120)
        let start = min(max(since ?? earliest, earliest), end.addingTimeInterval(-120))
        let url = "\(restBase)/sobjects/\(spec.object)/deleted/?start=\(Self.deletedParameter(start))&end=\(Self.deletedParameter(end))"
        let response = try await http.json(.init(url: url), as: SalesforceWire.DeletedResponse.self,
                                           classify: classify("deleted \(spec.object)"))
        if let since, let earliest = response.earliestDateAvailable.flatMap(CRMTimestamp.parse), earliest > since {
            // The recycle bin no longer reaches back to the last run: only a full sweep finds the rest.
            http.logger.warning("deleted records before the recycle bin's window are not listed; run `sync --full` to sweep them", metadata: [
                "connector": "\(name)", "object": "\(spec.object)", "since": "\(CRMTimestamp.iso(since))",
                "earliest_available": "\(CRMTimestamp.iso(earliest))",
            ])
        }
        var deletions = response.deletedRecords.map { entry in
            Deletion(objectType: type, externalID: entry.id, deletedAt: CRMTimestamp.parse(entry.deletedDate) ?? end)
        }
        if spec.merges, !deletions.isEmpty {
            let masters = try await masterRecords(of: spec, ids: deletions.map(\.externalID))
            for index in deletions.indices { deletions[index].mergedInto = masters[deletions[index].externalID] }
        }
        return deletions
    }

    /// The active stages of the Opportunity stage picklist (`OpportunityStage`), in the order the
    /// org shows them. Salesforce has one picklist, listed as the mapping's `default` pipeline.
    public func pipelineStages() async throws -> [PipelineStage] {
        let spec = Spec(object: "OpportunityStage", fields: ["ApiName", "MasterLabel", "SortOrder"])
        var response = try await query(
            "SELECT ApiName, MasterLabel, SortOrder FROM OpportunityStage WHERE IsActive = true ORDER BY SortOrder", spec: spec)
        var stages: [PipelineStage] = []
        while true {
            for record in response.records {
                guard let apiName = record.string("ApiName") else {
                    throw ConnectorError.malformedResponse(connector: name, what: "query OpportunityStage: a stage without ApiName")
                }
                let order = record.decimal("SortOrder").map { NSDecimalNumber(decimal: $0).intValue } ?? stages.count
                stages.append(PipelineStage(pipeline: "default", pipelineLabel: "Opportunity", stage: apiName,
                                            label: record.string("MasterLabel"), displayOrder: order))
            }
            guard !response.done, let path = response.nextRecordsUrl else { break }
            response = try await more(path, spec: spec)
        }
        return stages
    }

    /// The corporate currency of an org without multiple currencies.
    func organizationCurrency() async throws -> String {
        let spec = Spec(object: "Organization", fields: ["DefaultCurrencyIsoCode"])
        let response = try await query("SELECT DefaultCurrencyIsoCode FROM Organization", spec: spec)
        guard let currency = response.records.first?.string("DefaultCurrencyIsoCode") else {
            throw ConnectorError.malformedResponse(connector: name, what: "query Organization: no DefaultCurrencyIsoCode")
        }
        return currency
    }

    /// A merge deletes the records it absorbed; each still names the survivor in `MasterRecordId`,
    /// visible through `queryAll`.
    func masterRecords(of spec: Spec, ids: [String]) async throws -> [String: String] {
        var masters: [String: String] = [:]
        for chunk in ids.chunked(200) {
            let list = chunk.map { "'\($0.replacingOccurrences(of: "'", with: "\\'"))'" }.joined(separator: ", ")
            var lookup = spec
            lookup.includeDeleted = true
            var response = try await query(
                "SELECT Id, MasterRecordId FROM \(spec.object) WHERE IsDeleted = true AND Id IN (\(list))", spec: lookup)
            while true {
                for record in response.records {
                    if let master = record.string("MasterRecordId") { masters[record.id] = master }
                }
                guard !response.done, let path = response.nextRecordsUrl else { break }
                response = try await more(path, spec: lookup)
            }
        }
        return masters
    }

    /// `2026-11-01T00:00:00+00:00`, percent-encoded as the REST API expects it.
    static func deletedParameter(_ date: Date) -> String {
        let text = String(CRMTimestamp.iso(date).prefix(19)) + "+00:00"
        return text.addingPercentEncoding(withAllowedCharacters: queryValueAllowed) ?? text
    }

    static let queryValueAllowed: CharacterSet = {
        var set = CharacterSet.urlQueryAllowed
        set.remove(charactersIn: "+&=:,/?#")
        return set
    }()

    /// Salesforce errors are `[{"errorCode": …, "message": …}]`; the message names the connector,
    /// what was being read, and Salesforce's own code and words.
    func classify(_ what: String) -> @Sendable (CRMHTTPClient.Response) -> ConnectorError {
        let name = self.name
        return { response in
            let first = (try? JSONDecoder().decode([SalesforceWire.ErrorBody].self, from: response.body))?.first
            let detail = first.map { "\($0.errorCode ?? "ERROR"): \($0.message ?? "no message")" }
                ?? "HTTP \(response.status) without a Salesforce error body"
            let message = "\(what): \(detail)"
            switch (response.status, first?.errorCode) {
            case (401, _):
                return .authentication(connector: name, message: message)
            case (403, "REQUEST_LIMIT_EXCEEDED"?):
                // The day's quota (`TotalRequests`) will not come back by retrying; too many
                // concurrent requests will.
                if first?.message?.contains("TotalRequests") ?? false {
                    return .quotaExhausted(connector: name, message: message)
                }
                return .throttled(connector: name, message: message)
            default:
                return .http(connector: name, status: response.status, message: message)
            }
        }
    }
}

/// Reads one object's changes through one SOQL query and its locator. A locator pages through
/// the result as it stood when the query ran, so records sharing a stamp across pages can be
/// neither skipped nor doubled by edits made meanwhile; a run that stops half way resumes with
/// `>=` on the cursor's stamp, skipping the ids the cursor holds at exactly that stamp.
struct SOQLPager: ChangePager {
    let connector: SalesforceConnector
    let stream: SyncStream
    var spec: SalesforceConnector.Spec
    /// The org's only currency, once the org turned out to have no `CurrencyIsoCode` fields.
    var singleCurrency: String?
    var anchor: Date?
    var seenAtAnchor: Set<String>
    var nextPath: String?
    var started = false
    /// The newest stamp handed out so far and the ids at it: where to re-anchor when Salesforce
    /// has expired the query locator (15 idle minutes) before the last page was read.
    var position: (at: Date, ids: Set<String>)?

    init(connector: SalesforceConnector, stream: SyncStream, spec: SalesforceConnector.Spec, anchor: Date?, cursor: SyncCursor) {
        self.connector = connector
        self.stream = stream
        self.spec = spec
        self.anchor = anchor
        seenAtAnchor = anchor != nil && anchor == cursor.modifiedAt ? cursor.idsAtModifiedAt : []
    }

    mutating func next() async throws -> ChangePage? {
        let response: SalesforceWire.QueryResponse
        if !started {
            do {
                response = try await connector.query(connector.soql(spec, anchor: anchor), spec: spec)
            } catch let error as ConnectorError where spec.fields.contains("CurrencyIsoCode") && error.isMissingField("CurrencyIsoCode") {
                // A single-currency org: its records have no currency field, the org has one currency.
                spec.fields.removeAll { $0 == "CurrencyIsoCode" }
                singleCurrency = try await connector.organizationCurrency()
                response = try await connector.query(connector.soql(spec, anchor: anchor), spec: spec)
            }
            started = true
        } else if let path = nextPath {
            do {
                response = try await connector.more(path, spec: spec)
            } catch let error as ConnectorError where error.isExpiredQueryLocator {
                if let position {
                    seenAtAnchor = position.ids.union(position.at == anchor ? seenAtAnchor : [])
                    anchor = position.at
                }
                started = false
                nextPath = nil
                return try await next()
            }
        } else {
            return nil
        }
        nextPath = response.done ? nil : response.nextRecordsUrl
        if !response.done && nextPath == nil {
            throw ConnectorError.malformedResponse(connector: connector.name, what: "query \(spec.object): done is false but there is no nextRecordsUrl")
        }
        if response.records.isEmpty && nextPath == nil { return nil }
        let stamped = response.records.compactMap { record in record.date("SystemModstamp").map { (record: record, at: $0) } }
        let fresh = stamped.filter { item in
            guard let anchor else { return true }
            return item.at > anchor || (item.at == anchor && !seenAtAnchor.contains(item.record.id))
        }
        var batch = SalesforceRecords(marginField: connector.marginField)
            .batch(stream: stream, records: fresh.map(\.record))
        if let singleCurrency {
            for index in batch.deals.indices { batch.deals[index].currency = singleCurrency }
            for index in batch.campaigns.indices { batch.campaigns[index].currency = singleCurrency }
        }
        let stamps = fresh.map { (id: $0.record.id, modifiedAt: $0.at) }
        for stamp in stamps {
            if let current = position, stamp.modifiedAt <= current.at {
                if stamp.modifiedAt == current.at { position?.ids.insert(stamp.id) }
            } else {
                position = (stamp.modifiedAt, [stamp.id])
            }
        }
        return ChangePage(batch: batch, stamps: stamps, ids: stamps.map(\.id))
    }
}

extension ConnectorError {
    /// Salesforce's answer to a query naming a field the org does not have.
    func isMissingField(_ field: String) -> Bool {
        guard case .http(_, 400, let message) = self else { return false }
        return message.contains("INVALID_FIELD") && message.contains("'\(field)'")
    }

    /// The query locator behind a `nextRecordsUrl` is gone (idle too long, or too many open).
    var isExpiredQueryLocator: Bool {
        guard case .http(_, 400, let message) = self else { return false }
        return message.contains("INVALID_QUERY_LOCATOR")
    }
}

extension SalesforceConnector: PipelineListing {}
