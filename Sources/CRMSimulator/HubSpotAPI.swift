import CRMSyncCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// HubSpot's CRM v3/v4 wire format over the simulator's data: search with filters, sorts and the
/// 10,000-result ceiling, archived lists, batch reads with property history, v4 associations,
/// owners, pipelines and task creation.
struct HubSpotAPI: Sendable {
    let state: SimulatorState

    static let searchCeiling = 10_000

    func register(on router: Router<BasicRequestContext>, guarded: @escaping Guard) {
        router.post("/crm/v3/objects/:object/search") { request, context in
            let object = try context.parameters.require("object")
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await guarded(request, true) { try await search(object: object, body: Data(buffer: body)) }
        }
        router.get("/crm/v3/objects/:object") { request, context in
            let object = try context.parameters.require("object")
            return try await guarded(request, false) { await list(object: object, query: request.uri.queryParameters) }
        }
        router.post("/crm/v3/objects/:object/batch/read") { request, context in
            let object = try context.parameters.require("object")
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await guarded(request, false) { try await batchRead(object: object, body: Data(buffer: body)) }
        }
        router.post("/crm/v4/associations/:from/:to/batch/read") { request, context in
            let from = try context.parameters.require("from")
            let to = try context.parameters.require("to")
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await guarded(request, false) { try await associations(from: from, to: to, body: Data(buffer: body)) }
        }
        // The Python client asks for `/crm/v3/owners/`; the router treats both spellings as one path.
        router.get("/crm/v3/owners") { request, _ in
            try await guarded(request, false) { await owners(query: request.uri.queryParameters) }
        }
        router.get("/crm/v3/pipelines/deals") { request, _ in
            try await guarded(request, false) { await pipelines() }
        }
        router.post("/crm/v3/objects/:object") { request, context in
            let object = try context.parameters.require("object")
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await guarded(request, false) { try await create(object: object, body: Data(buffer: body)) }
        }
    }

    // MARK: Rendering

    static let stampProperty: [String: String] = ["contacts": "lastmodifieddate"]

    func render(_ record: SimRecord, object: String, properties: [String]?) -> [String: Any] {
        var props: [String: Any] = [:]
        let wanted = properties ?? Array(record.properties.keys)
        for name in wanted { props[name] = record.properties[name] ?? NSNull() }
        props["hs_object_id"] = "\(record.id)"
        props["createdate"] = record.properties["createdate"] ?? CRMTimestamp.iso(Date(ms: record.createdAt))
        let stamp = Self.stampProperty[object] ?? "hs_lastmodifieddate"
        props[stamp] = CRMTimestamp.iso(Date(ms: record.updatedAt))
        var rendered: [String: Any] = [
            "id": "\(record.id)", "properties": props,
            "createdAt": CRMTimestamp.iso(Date(ms: record.createdAt)),
            "updatedAt": CRMTimestamp.iso(Date(ms: record.updatedAt)), "archived": record.archived,
        ]
        if let archivedAt = record.archivedAt { rendered["archivedAt"] = CRMTimestamp.iso(Date(ms: archivedAt)) }
        return rendered
    }

    // MARK: Endpoints

    func search(object: String, body: Data) async throws -> SimResponse {
        guard let request = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            return SimulatorServer.json(400, ["status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"])
        }
        let limit = min((request["limit"] as? Int) ?? 10, 200)
        let offset = Int((request["after"] as? String) ?? "0") ?? 0
        if offset + limit > Self.searchCeiling {
            return SimulatorServer.json(400, [
                "status": "error", "category": "VALIDATION_ERROR",
                "message": "There was a problem with the request. Search results are limited to 10,000; use filters to narrow the query.",
            ])
        }
        let properties = request["properties"] as? [String]
        let stampName = Self.stampProperty[object] ?? "hs_lastmodifieddate"
        let groups = (request["filterGroups"] as? [[String: Any]]) ?? []
        func matches(_ record: SimRecord) -> Bool {
            if record.archived { return false }
            if groups.isEmpty { return true }
            return groups.contains { group in
                ((group["filters"] as? [[String: Any]]) ?? []).allSatisfy { filter in
                    let name = filter["propertyName"] as? String ?? ""
                    let op = filter["operator"] as? String ?? "EQ"
                    let value = filter["value"] as? String ?? ""
                    let actual: Int64?
                    if name == stampName { actual = record.updatedAt } else if name == "hs_object_id" { actual = Int64(record.id) } else { actual = nil }
                    guard let actual else { return record.properties[name] == value }
                    let wanted = Int64(value) ?? CRMTimestamp.parse(value).map(CRMTimestamp.millis) ?? 0
                    switch op {
                    case "GTE": return actual >= wanted
                    case "GT": return actual > wanted
                    case "LTE": return actual <= wanted
                    case "LT": return actual < wanted
                    case "EQ": return actual == wanted
                    case "NEQ": return actual != wanted
                    default: return false
                    }
                }
            }
        }
        // The connector's query shape (one `GTE` on the stamp, or none) takes the indexed path.
        let found: SimulatorState.SearchResult
        switch Self.stampQuery(groups, stampName: stampName) {
        case .everything:
            found = await state.searchByStamp(object, from: nil, offset: offset, limit: limit)
        case .from(let from):
            found = await state.searchByStamp(object, from: from, offset: offset, limit: limit)
        case .other:
            let all = await state.records(object).values.filter(matches).sorted { ($0.updatedAt, $0.id) < ($1.updatedAt, $1.id) }
            found = .init(total: all.count, page: Array(all.dropFirst(offset).prefix(limit)), earlier: Array(all.prefix(offset).suffix(2)))
        }
        let total = found.total
        var page = found.page
        let earlier = found.earlier
        let faults = await state.faults
        if !page.isEmpty, let again = earlier.randomElement(), await state.roll(faults.repeatRecords) {
            // A record from an earlier page shows up again.
            page.insert(again, at: 0)
        }
        var response: [String: Any] = [
            "total": total, "results": page.map { render($0, object: object, properties: properties) },
        ]
        if offset + limit < total {
            response["paging"] = ["next": ["after": "\(offset + limit)", "link": NSNull()]]
        }
        if object == "deals" {
            await state.editDealsIfFaulted()
        }
        await state.record(.init(method: "POST", path: "/crm/v3/objects/\(object)/search",
                                 page: "\(groups.description.hashValue):\(offset)", status: 200))
        return SimulatorServer.json(200, response)
    }

    enum StampQuery {
        case everything
        case from(Int64)
        case other
    }

    /// Recognises the connector's query shape: no filter, or one `GTE` on the stamp property.
    static func stampQuery(_ groups: [[String: Any]], stampName: String) -> StampQuery {
        if groups.isEmpty { return .everything }
        guard groups.count == 1, let filters = groups[0]["filters"] as? [[String: Any]], filters.count == 1,
              filters[0]["propertyName"] as? String == stampName, filters[0]["operator"] as? String == "GTE",
              let value = filters[0]["value"] as? String,
              let from = Int64(value) ?? CRMTimestamp.parse(value).map(CRMTimestamp.millis)
        else { return .other }
        return .from(from)
    }

    func list(object: String, query: FlatDictionary<Substring, Substring>) async -> SimResponse {
        let archived = (query["archived"].map { $0.lowercased() == "true" }) ?? false
        let limit = min(Int(query["limit"] ?? "10") ?? 10, 100)
        let after = Int(query["after"] ?? "0") ?? 0
        let properties = query.getAll("properties").flatMap { $0.split(separator: ",").map(String.init) }
        let all = await state.records(object).values.filter { $0.archived == archived && $0.id > after }.sorted { $0.id < $1.id }
        let page = Array(all.prefix(limit))
        var response: [String: Any] = ["results": page.map { render($0, object: object, properties: properties.isEmpty ? nil : properties) }]
        if all.count > limit, let last = page.last {
            response["paging"] = ["next": ["after": "\(last.id)", "link": NSNull()]]
        }
        await state.record(.init(method: "GET", path: "/crm/v3/objects/\(object)", page: "\(archived):\(after)", status: 200))
        return SimulatorServer.json(200, response)
    }

    func batchRead(object: String, body: Data) async throws -> SimResponse {
        guard let request = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let inputs = request["inputs"] as? [[String: Any]] else {
            return SimulatorServer.json(400, ["status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"])
        }
        let withHistory = (request["propertiesWithHistory"] as? [String]) ?? []
        if inputs.count > (withHistory.isEmpty ? 100 : 50) {
            return SimulatorServer.json(400, ["status": "error", "message": "Too many inputs", "category": "VALIDATION_ERROR"])
        }
        let records = await state.records(object)
        var results: [[String: Any]] = []
        for input in inputs {
            guard let id = (input["id"] as? String).flatMap(Int.init), let record = records[id], !record.archived else { continue }
            var rendered = render(record, object: object, properties: request["properties"] as? [String])
            if withHistory.contains("dealstage") {
                // HubSpot lists property history newest first.
                rendered["propertiesWithHistory"] = ["dealstage": record.stageHistory.reversed().map { stage, at in
                    ["value": stage, "timestamp": CRMTimestamp.iso(Date(ms: at)), "sourceType": "CRM_UI", "sourceId": "userId:101"]
                }]
            }
            results.append(rendered)
        }
        let now = CRMTimestamp.iso(await state.now)
        return SimulatorServer.json(200, ["status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now])
    }

    func associations(from: String, to: String, body: Data) async throws -> SimResponse {
        guard let request = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let inputs = request["inputs"] as? [[String: Any]] else {
            return SimulatorServer.json(400, ["status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"])
        }
        var results: [[String: Any]] = []
        var missing: [String] = []
        for input in inputs {
            guard let idText = input["id"] as? String, let id = Int(idText) else { continue }
            let linked = await state.linked("\(from)->\(to)", from: id)
            if linked.isEmpty { missing.append(idText); continue }
            results.append(["from": ["id": idText], "to": linked.map { ["toObjectId": $0, "associationTypes": [["category": "HUBSPOT_DEFINED", "typeId": 3, "label": NSNull()]]] }])
        }
        let now = CRMTimestamp.iso(await state.now)
        var response: [String: Any] = ["status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now]
        if !missing.isEmpty {
            response["numErrors"] = missing.count
            response["errors"] = missing.map { ["status": "error", "category": "OBJECT_NOT_FOUND",
                                                "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                                                "message": "No \(to) is associated with \(from) \($0).", "context": ["fromObjectId": [$0]]] }
            return SimulatorServer.json(207, response)
        }
        return SimulatorServer.json(200, response)
    }

    func owners(query: FlatDictionary<Substring, Substring>) async -> SimResponse {
        let owners = await state.data.owners
        let after = Int(query["after"] ?? "0") ?? 0
        let limit = min(Int(query["limit"] ?? "100") ?? 100, 500)
        let rest = owners.filter { $0.id > after }.sorted { $0.id < $1.id }
        let page = Array(rest.prefix(limit))
        var response: [String: Any] = ["results": page.map { owner in
            ["id": "\(owner.id)", "email": owner.properties["email"] ?? "", "firstName": owner.properties["firstName"] ?? "",
             "lastName": owner.properties["lastName"] ?? "", "userId": owner.id, "archived": false,
             "createdAt": CRMTimestamp.iso(Date(ms: owner.createdAt)), "updatedAt": CRMTimestamp.iso(Date(ms: owner.updatedAt))] as [String: Any]
        }]
        if rest.count > limit, let last = page.last { response["paging"] = ["next": ["after": "\(last.id)"]] }
        return SimulatorServer.json(200, response)
    }

    func pipelines() async -> SimResponse {
        let stages = await state.data.pipelineStages
        return SimulatorServer.json(200, ["results": [[
            "id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": false,
            "stages": stages.enumerated().map { index, id in
                ["id": id, "label": id, "displayOrder": index, "archived": false,
                 "metadata": ["isClosed": id.hasPrefix("closed") ? "true" : "false", "probability": id == "closedwon" ? "1.0" : "0.2"]] as [String: Any]
            },
        ]]])
    }

    func create(object: String, body: Data) async throws -> SimResponse {
        guard let request = try? JSONSerialization.jsonObject(with: body) as? [String: Any],
              let properties = request["properties"] as? [String: Any] else {
            return SimulatorServer.json(400, ["status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"])
        }
        var links: [(String, Int)] = []
        for association in (request["associations"] as? [[String: Any]]) ?? [] {
            guard let to = association["to"] as? [String: Any] else { continue }
            let id = (to["id"] as? String).flatMap(Int.init) ?? (to["id"] as? Int)
            let typeID = ((association["types"] as? [[String: Any]])?.first?["associationTypeId"] as? Int) ?? 0
            let target = [204: "contacts", 216: "deals", 192: "companies"][typeID] ?? "contacts"
            if let id { links.append((target, id)) }
        }
        let record = await state.create(object, properties: properties.compactMapValues { "\($0)" }, associations: links)
        return SimulatorServer.json(201, render(record, object: object, properties: nil))
    }
}
