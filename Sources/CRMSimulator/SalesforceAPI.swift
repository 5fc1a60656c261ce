import CRMSyncCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// Salesforce's REST wire format over the simulator's data: SOQL `query` and `queryAll` with
/// `nextRecordsUrl` query locators, `sobjects/X/deleted/`, error arrays and `Sforce-Limit-Info`.
struct SalesforceAPI: Sendable {
    let state: SimulatorState
    let locators = QueryLocators()

    /// Salesforce returns at most 2,000 records per page; `Sforce-Query-Options: batchSize=N` may
    /// ask for fewer, but not fewer than 200.
    static let batchSizes = 200...2000
    /// The recycle bin keeps deleted records this long; `deleted/` reaches no further back.
    static let deletedRetentionDays: Int64 = 15

    func register(on router: Router<BasicRequestContext>, guarded: @escaping Guard) {
        // The client library asks for `/query/?q=`; the router treats both spellings as one path.
        router.get("/services/data/:version/query") { request, context in
            let version = try context.parameters.require("version")
            return try await guarded(request, false) { await query(request, version: version, includeDeleted: false) }
        }
        router.get("/services/data/:version/queryAll") { request, context in
            let version = try context.parameters.require("version")
            return try await guarded(request, false) { await query(request, version: version, includeDeleted: true) }
        }
        router.get("/services/data/:version/query/:locator") { request, context in
            let version = try context.parameters.require("version")
            let locator = try context.parameters.require("locator")
            return try await guarded(request, false) { await more(version: version, locator: locator) }
        }
        router.get("/services/data/:version/queryAll/:locator") { request, context in
            let version = try context.parameters.require("version")
            let locator = try context.parameters.require("locator")
            return try await guarded(request, false) { await more(version: version, locator: locator) }
        }
        router.get("/services/data/:version/sobjects/:object/deleted") { request, context in
            let version = try context.parameters.require("version")
            let object = try context.parameters.require("object")
            return try await guarded(request, false) { await deleted(request, version: version, object: object) }
        }
        router.post("/services/data/:version/sobjects/:object") { request, context in
            let version = try context.parameters.require("version")
            let object = try context.parameters.require("object")
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await guarded(request, false) { await create(version: version, object: object, body: Data(buffer: body)) }
        }
    }

    // MARK: Endpoints

    func query(_ request: Request, version: String, includeDeleted: Bool) async -> SimResponse {
        guard Self.isVersion(version) else { return notFound() }
        let parameters = Self.parameters(request.uri.query)
        guard let text = parameters["q"], !text.isEmpty else {
            return WireErrors.sfError(400, "MALFORMED_QUERY", "A query string has to be specified")
        }
        let soql: SOQLQuery
        let matching: [SObjectRow]
        let data = await state.data
        do throws(SOQLError) {
            soql = try SOQLQuery(parsing: text)
            if !data.multiCurrency, let field = soql.fields.first(where: SalesforceOrg.multiCurrencyFields.contains) {
                throw SOQLError.invalidField(
                    "No such column '\(field)' on entity '\(soql.object)'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name.")
            }
            let rows = SalesforceOrg(data: data).rows(soql.object).filter { includeDeleted || $0["IsDeleted"] != .bool(true) }
            matching = try soql.run(over: rows)
        } catch {
            return WireErrors.sfError(400, error.errorCode, error.message)
        }
        let records = matching.map { Self.render($0, fields: soql.fields, object: soql.object, version: version) }
        let batch = Self.batchSize(request.headers[HTTPField.Name("Sforce-Query-Options")!])
        var locator: String?
        if records.count > batch {
            locator = await locators.open(records: records, batch: batch, now: await state.now)
        }
        // Salespeople keep working while a sync pages through opportunities.
        if soql.object == "Opportunity" {
            await state.editDealsIfFaulted()
        }
        await state.record(.init(method: "GET", path: "/services/data/\(version)/\(includeDeleted ? "queryAll" : "query")",
                                 page: "\(soql.object):0", status: 200))
        return await page(records: records, from: 0, batch: batch, locator: locator, version: version)
    }

    func more(version: String, locator text: String) async -> SimResponse {
        guard Self.isVersion(version) else { return notFound() }
        guard let dash = text.lastIndex(of: "-"), let offset = Int(text[text.index(after: dash)...]),
              let open = await locators.records(String(text[..<dash]), now: await state.now), offset >= 0,
              offset <= open.records.count else {
            return WireErrors.sfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        }
        let faults = await state.faults
        var repeated: Data?
        if offset > 0, await state.roll(faults.repeatRecords) {
            // A record from an earlier page shows up again.
            repeated = open.records[await state.randomInt(0..<offset)]
        }
        await state.record(.init(method: "GET", path: "/services/data/\(version)/query", page: text, status: 200))
        return await page(records: open.records, from: offset, batch: open.batch, locator: String(text[..<dash]), version: version,
                          repeated: repeated)
    }

    func deleted(_ request: Request, version: String, object: String) async -> SimResponse {
        guard Self.isVersion(version) else { return notFound() }
        guard let name = SalesforceOrg.object(named: object) else {
            return WireErrors.sfError(404, "NOT_FOUND", "The requested resource does not exist")
        }
        let parameters = Self.parameters(request.uri.query)
        guard let startText = parameters["start"], let endText = parameters["end"] else {
            return WireErrors.sfError(400, "MISSING_ARGUMENT", "start and end are required")
        }
        guard let start = CRMTimestamp.parse(startText).map(CRMTimestamp.millis),
              let end = CRMTimestamp.parse(endText).map(CRMTimestamp.millis) else {
            return WireErrors.sfError(400, "INVALID_REPLICATION_DATE", "start and end must be ISO 8601 date-times")
        }
        // Minute granularity: the seconds of start and end are ignored.
        let minute: Int64 = 60_000
        let from = start - start % minute, to = end - end % minute
        guard from < to else {
            return WireErrors.sfError(400, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate by more than one minute")
        }
        let now = CRMTimestamp.millis(await state.now)
        let earliest = (now - Self.deletedRetentionDays * 86_400_000) / minute * minute
        let rows = SalesforceOrg(data: await state.data).rows(name)
        let gone = rows.compactMap { row -> (String, Int64)? in
            guard let at = row.deletedAt, at >= max(from, earliest), at < to else { return nil }
            return (row.id, at)
        }.sorted { ($0.1, $0.0) < ($1.1, $1.0) }
        await state.record(.init(method: "GET", path: "/services/data/\(version)/sobjects/\(name)/deleted", page: "\(from):\(to)", status: 200))
        var response = SimulatorServer.json(200, [
            "deletedRecords": gone.map { ["id": $0.0, "deletedDate": SFValue.dateTimeText($0.1)] },
            "earliestDateAvailable": SFValue.dateTimeText(earliest),
            "latestDateCovered": SFValue.dateTimeText(min(to, now - now % minute)),
        ])
        response.headers = await limitHeaders()
        return response
    }

    /// `POST sobjects/Task/`: the task is stored with the dataset's tasks, so `SELECT … FROM Task`
    /// lists it like any other. Other objects are read-only in the simulator.
    func create(version: String, object: String, body: Data) async -> SimResponse {
        guard Self.isVersion(version) else { return notFound() }
        guard SalesforceOrg.object(named: object) == "Task" else {
            return WireErrors.sfError(404, "NOT_FOUND", "The requested resource does not exist")
        }
        guard let fields = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            return WireErrors.sfError(400, "JSON_PARSER_ERROR", "The request body is not a JSON object")
        }
        var properties: [String: String] = [:]
        var links: [(String, Int)] = []
        for (name, value) in fields {
            guard let field = SalesforceOrg.field(name, on: "Task") else {
                return WireErrors.sfError(400, "INVALID_FIELD", "No such column '\(name)' on sobject of type Task")
            }
            guard let text = value as? String else { continue }
            // Reference fields must hold an id of the right object.
            let references: [String: (prefix: String, target: String?)] = [
                "OwnerId": (SalesforceID.user, nil), "WhoId": (SalesforceID.contact, "contacts"), "WhatId": (SalesforceID.opportunity, "deals"),
            ]
            if let reference = references[field] {
                guard let number = SalesforceID.number(text, prefix: reference.prefix) else {
                    return WireErrors.sfError(400, "MALFORMED_ID", "\(field): id value of incorrect type: \(text)")
                }
                if let target = reference.target { links.append((target, number)) } else { properties["hubspot_owner_id"] = "\(number)" }
                continue
            }
            switch field {
            case "Subject": properties["hs_task_subject"] = text
            case "Description": properties["hs_task_body"] = text
            case "Status": properties["hs_task_status"] = text == "Completed" ? "COMPLETED" : "NOT_STARTED"
            case "Priority": properties["hs_task_priority"] = text == "High" ? "HIGH" : "MEDIUM"
            case "ActivityDate":
                guard let day = CRMTimestamp.parse(text + "T00:00:00Z") else {
                    return WireErrors.sfError(400, "INVALID_TYPE_ON_FIELD_IN_RECORD", "Due Date Only: value not of required type: \(text)")
                }
                properties["hs_timestamp"] = CRMTimestamp.iso(day)
            default: continue
            }
        }
        properties["hs_task_status"] = properties["hs_task_status"] ?? "NOT_STARTED"
        let record = await state.create("tasks", properties: properties, associations: links)
        await state.record(.init(method: "POST", path: "/services/data/\(version)/sobjects/Task", page: "", status: 201))
        return SimulatorServer.json(201, ["id": SalesforceID.make(SalesforceID.task, record.id), "success": true, "errors": [Any]()])
    }

    // MARK: Rendering

    /// One page of a query result, assembled from records serialised when the query ran: a query
    /// locator pages through the result as it was then, as Salesforce's does.
    func page(records: [Data], from offset: Int, batch: Int, locator: String?, version: String, repeated: Data? = nil) async -> SimResponse {
        let end = min(offset + batch, records.count)
        let slice = (repeated.map { [$0] } ?? []) + records[min(offset, end)..<end]
        let done = locator == nil || end >= records.count
        var head = "{\"totalSize\":\(records.count),\"done\":\(done)"
        if !done, let locator {
            head += ",\"nextRecordsUrl\":\"/services/data/\(version)/query/\(locator)-\(end)\""
        }
        var body = Data((head + ",\"records\":[").utf8)
        for (index, record) in slice.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(record)
        }
        body.append(contentsOf: Array("]}".utf8))
        return SimResponse(status: 200, body: body, headers: await limitHeaders())
    }

    static func render(_ row: SObjectRow, fields: [String], object: String, version: String) -> Data {
        var record: [String: Any] = ["attributes": ["type": object, "url": "/services/data/\(version)/sobjects/\(object)/\(row.id)"]]
        for field in fields { record[field] = row[field].json }
        return (try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])) ?? Data("{}".utf8)
    }

    func limitHeaders() async -> [String: String] {
        let used = await state.requestsToday
        let limit = await state.dailyRequestLimit ?? 100_000
        return ["Sforce-Limit-Info": "api-usage=\(used)/\(limit)"]
    }

    func notFound() -> SimResponse {
        WireErrors.sfError(404, "NOT_FOUND", "The requested resource does not exist")
    }

    static func isVersion(_ text: String) -> Bool {
        text.first == "v" && Double(text.dropFirst()) != nil && text.contains(".")
    }

    static func batchSize(_ header: String?) -> Int {
        guard let header, let range = header.range(of: "batchSize=") else { return batchSizes.upperBound }
        let digits = header[range.upperBound...].prefix { $0.isNumber }
        return min(max(Int(digits) ?? batchSizes.upperBound, batchSizes.lowerBound), batchSizes.upperBound)
    }

    /// Query parameters as a form decoder reads them: `+` is a space, then percent-decoding.
    static func parameters(_ query: String?) -> [String: String] {
        var result: [String: String] = [:]
        for pair in (query ?? "").split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1).map {
                String($0).replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String($0)
            }
            if let name = parts.first { result[name] = parts.count > 1 ? parts[1] : "" }
        }
        return result
    }
}

/// Open query locators: the serialised records of a query, paged through by `nextRecordsUrl`.
/// Salesforce expires a locator left unused for 15 minutes and keeps a handful open per user,
/// dropping the oldest; so does this.
actor QueryLocators {
    struct Open: Sendable { var records: [Data]; var batch: Int; var lastUsed: Date }
    private var open: [String: Open] = [:]
    private var order: [String] = []
    private var counter = 0
    static let maxOpen = 50
    static let idleLimit: TimeInterval = 15 * 60

    func open(records: [Data], batch: Int, now: Date) -> String {
        counter += 1
        // Salesforce locators start with the 01g key prefix.
        let id = "01g5g" + String(format: "%010d", counter) + "AAA"
        open[id] = Open(records: records, batch: batch, lastUsed: now)
        order.append(id)
        if order.count > Self.maxOpen { open[order.removeFirst()] = nil }
        return id
    }

    func records(_ id: String, now: Date) -> Open? {
        guard var entry = open[id] else { return nil }
        guard now.timeIntervalSince(entry.lastUsed) <= Self.idleLimit else {
            open[id] = nil
            return nil
        }
        entry.lastUsed = now
        open[id] = entry
        return entry
    }
}
