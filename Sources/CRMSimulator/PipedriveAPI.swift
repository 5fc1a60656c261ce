import CRMSyncCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import NIOCore

/// Pipedrive's wire format over the simulator's data: v2 cursor-paginated lists (`updated_since`,
/// `sort_by=update_time`, `status=deleted`), v1 users, v1 deal flow (stage history), v2 pipelines
/// and stages, and `POST /api/v1/activities`. Envelopes are `{success, data, additional_data}`.
struct PipedriveAPI: Sendable {
    let state: SimulatorState

    static let listed: Set<String> = ["deals", "persons", "organizations", "activities"]
    static let maxLimit = 500
    /// Pipedrive purges deleted deals after 30 days.
    static let deletedRetention: Int64 = 30 * 86_400_000

    func register(on router: Router<BasicRequestContext>, guarded: @escaping Guard) {
        router.get("/api/v2/:object") { request, context in
            let object = try context.parameters.require("object")
            return try await guarded(request, false) { await list(object: object, query: request.uri.queryParameters) }
        }
        router.get("/api/v1/users") { request, _ in
            try await guarded(request, false) { await users() }
        }
        router.get("/api/v1/deals/:id/flow") { request, context in
            let id = try context.parameters.require("id")
            return try await guarded(request, false) { await flow(dealID: id, query: request.uri.queryParameters) }
        }
        router.post("/api/v1/activities") { request, _ in
            let body = try await request.body.collect(upTo: 1 << 20)
            return try await guarded(request, false) { await createActivity(body: Data(buffer: body)) }
        }
    }

    // MARK: Envelopes

    static func ok(_ data: Any, additional: Any = NSNull(), status: Int = 200) -> SimResponse {
        SimulatorServer.json(status, ["success": true, "data": data, "additional_data": additional])
    }

    static func error(_ status: Int, _ message: String) -> SimResponse {
        SimulatorServer.json(status, [
            "success": false, "error": message, "errorCode": status,
            "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.",
            "data": NSNull(), "additional_data": NSNull(),
        ])
    }

    /// Auth by `x-api-token` header or the legacy `api_token` query parameter; Pipedrive's own 401,
    /// 429 (with its `x-ratelimit-*` headers, rolling 2 s window) and 5xx bodies.
    static func dialect(state: SimulatorState) -> SimulatorDialect {
        SimulatorDialect(
            authorized: { request, token in
                request.headers[HTTPField.Name("x-api-token")!] == token
                    || request.uri.queryParameters["api_token"].map(String.init) == token
            },
            unauthorized: {
                var response = error(401, "unauthorized access")
                response.headers["x-401-by-gw"] = "true"
                return response
            },
            rateLimited: { _, retryAfter in
                let rate = await state.rateLimit.general
                var response = error(429, "Request over limit")
                response.headers["x-ratelimit-limit"] = "\(Int(rate * 2))"
                response.headers["x-ratelimit-remaining"] = "0"
                response.headers["x-ratelimit-reset"] = "\(retryAfter ?? 1)"
                if let retryAfter { response.headers["Retry-After"] = "\(retryAfter)" }
                return response
            },
            failure: { status in
                error(status, status == 503 ? "Service Unavailable" : "Internal server error")
            })
    }

    // MARK: Rendering

    static func rfc(_ ms: Int64) -> String { CRMTimestamp.rfc3339Seconds(Date(ms: ms)) }
    static func v1(_ ms: Int64) -> String { CRMTimestamp.pipedriveV1(Date(ms: ms)) }
    static func int(_ text: String?) -> Any { text.flatMap(Int.init) ?? NSNull() }
    static func time(_ text: String?) -> Any { text.flatMap(Int64.init).map(rfc) ?? NSNull() }

    func render(_ record: SimRecord, object: String) -> [String: Any] {
        let p = record.properties
        var base: [String: Any] = [
            "id": record.id, "add_time": Self.rfc(record.createdAt), "update_time": Self.rfc(record.updatedAt),
            "is_deleted": record.archived, "visible_to": 3, "label_ids": [Int](), "custom_fields": [String: Any](),
        ]
        switch object {
        case "deals":
            let status = record.archived ? "deleted" : p["status"] ?? "open"
            base.merge([
                "title": p["title"] ?? "", "creator_user_id": Self.int(p["owner_id"]), "owner_id": Self.int(p["owner_id"]),
                "value": Int(p["value"] ?? "0") ?? 0, "currency": p["currency"] ?? "EUR",
                "person_id": Self.int(p["person_id"]), "org_id": Self.int(p["org_id"]),
                "pipeline_id": Self.int(p["pipeline_id"]), "stage_id": Self.int(p["stage_id"]), "status": status,
                "probability": NSNull(), "stage_change_time": Self.time(p["stage_change_time"]),
                "close_time": Self.time(p["close_time"]),
                "won_time": p["status"] == "won" ? Self.time(p["close_time"]) : NSNull(),
                "lost_time": p["status"] == "lost" ? Self.time(p["close_time"]) : NSNull(),
                "first_won_time": NSNull(), "lost_reason": NSNull(), "expected_close_date": NSNull(),
                "is_archived": false, "archive_time": NSNull(), "origin": "ManuallyCreated", "origin_id": NSNull(),
                "channel": NSNull(), "channel_id": NSNull(),
            ]) { $1 }
        case "persons":
            base.merge([
                "name": p["name"] ?? "", "first_name": p["first_name"] ?? NSNull(), "last_name": p["last_name"] ?? NSNull(),
                "owner_id": Self.int(p["owner_id"]), "org_id": Self.int(p["org_id"]),
                "emails": p["email"].map { [["value": $0, "primary": true, "label": "work"]] } ?? [],
                "phones": [[String: Any]](),
            ]) { $1 }
        case "organizations":
            base.merge(["name": p["name"] ?? "", "owner_id": Self.int(p["owner_id"]), "address": NSNull()]) { $1 }
        case "activities":
            base.removeValue(forKey: "visible_to")
            let due: String? = p["due"].flatMap(Int64.init).map(Self.rfc)
            let dueDate: String? = due.map { String($0.prefix(10)) } ?? p["due_date"]
            let dueTime: String? = due.map { String($0.dropFirst(11).prefix(8)) } ?? p["due_time"].map { $0.count == 5 ? $0 + ":00" : $0 }
            var participants: [[String: Any]] = []
            if let person = p["person_id"].flatMap(Int.init) { participants.append(["person_id": person, "primary": true]) }
            var fields: [String: Any] = [:]
            fields["subject"] = p["subject"] ?? ""
            fields["type"] = p["type"] ?? "task"
            fields["owner_id"] = Self.int(p["owner_id"])
            fields["creator_user_id"] = Self.int(p["owner_id"])
            fields["deal_id"] = Self.int(p["deal_id"])
            fields["person_id"] = Self.int(p["person_id"])
            fields["org_id"] = Self.int(p["org_id"])
            fields["lead_id"] = NSNull()
            fields["done"] = p["done"] == "true"
            fields["busy"] = false
            fields["due_date"] = dueDate ?? NSNull()
            fields["due_time"] = dueTime ?? NSNull()
            fields["duration"] = p["duration"] ?? NSNull()
            fields["note"] = p["note"] ?? NSNull()
            fields["participants"] = participants
            base.merge(fields) { $1 }
        default:
            break
        }
        return base
    }

    // MARK: Endpoints

    /// v2 list: filtered by `updated_since` (>=) / `updated_until` (<), sorted by `id` or
    /// `update_time`, paged by a keyset cursor on (sort value, id) so records edited mid-listing
    /// never shift a page; ties on one second span pages safely.
    func list(object: String, query: FlatDictionary<Substring, Substring>) async -> SimResponse {
        if object == "pipelines" { return pipelines() }
        if object == "stages" { return stages(pipelineID: query["pipeline_id"].map(String.init)) }
        guard Self.listed.contains(object) else { return Self.error(404, "Unknown method .") }
        let limit = Int(query["limit"] ?? "100") ?? -1
        guard (1...Self.maxLimit).contains(limit) else {
            return Self.error(400, "Validation failed: limit: Parameter 'limit' must be between 1 and \(Self.maxLimit)")
        }
        var since: Int64?
        var until: Int64?
        for (name, target) in [("updated_since", \Bounds.since), ("updated_until", \Bounds.until)] {
            guard let text = query[Substring(name)].map(String.init) else { continue }
            guard Self.isRFC3339Seconds(text), let date = CRMTimestamp.parse(text) else {
                return Self.error(400, "Validation failed: \(name): Invalid date format, expected RFC 3339 without fractional seconds (e.g. 2025-01-01T10:20:00Z)")
            }
            var bounds = Bounds(since: since, until: until)
            bounds[keyPath: target] = CRMTimestamp.millis(date)
            (since, until) = (bounds.since, bounds.until)
        }
        let sortBy = query["sort_by"].map(String.init) ?? "id"
        guard ["id", "update_time", "add_time"].contains(sortBy) else {
            return Self.error(400, "Validation failed: sort_by: must be one of id, update_time, add_time")
        }
        let descending = query["sort_direction"] == "desc"
        var after: PageCursor?
        if let text = query["cursor"] {
            guard let cursor = PageCursor(encoded: String(text)), cursor.field == sortBy else {
                return Self.error(400, "Validation failed: cursor: Invalid cursor")
            }
            after = cursor
        }
        let now = CRMTimestamp.millis(await state.now)
        let statuses = Set((query["status"].map(String.init) ?? "").split(separator: ",").map(String.init))
        func visible(_ record: SimRecord) -> Bool {
            if object == "deals", !statuses.isEmpty {
                if record.archived {
                    return statuses.contains("deleted") && (record.archivedAt ?? 0) >= now - Self.deletedRetention
                }
                return statuses.contains(record.properties["status"] ?? "open")
            }
            return !record.archived
        }
        func key(_ record: SimRecord) -> Int64 {
            switch sortBy {
            case "update_time": record.updatedAt
            case "add_time": record.createdAt
            default: Int64(record.id)
            }
        }
        let all = await state.records(object).values
            .filter { record in
                visible(record) && (since.map { record.updatedAt >= $0 } ?? true) && (until.map { record.updatedAt < $0 } ?? true)
            }
            .sorted { descending ? (key($0), $0.id) > (key($1), $1.id) : (key($0), $0.id) < (key($1), $1.id) }
        let start = after.map { cursor in
            all.firstIndex { descending ? (key($0), $0.id) < (cursor.value, cursor.id) : (key($0), $0.id) > (cursor.value, cursor.id) } ?? all.count
        } ?? 0
        var page = Array(all[start...].prefix(limit))
        let more = start + page.count < all.count
        let next = more ? page.last.map { PageCursor(field: sortBy, value: key($0), id: $0.id).encoded } : nil
        let faults = await state.faults
        if let first = page.first, await state.roll(faults.repeatRecords) {
            // A record from an earlier page (or from before `updated_since`) shows up again.
            let earlier = await state.records(object).values.filter { visible($0) && (key($0), $0.id) < (key(first), first.id) }
            if !earlier.isEmpty { page.insert(earlier[earlier.index(earlier.startIndex, offsetBy: await state.randomInt(0..<earlier.count))], at: 0) }
        }
        let rendered = page.map { render($0, object: object) }
        if object == "deals" {
            await state.editPipedriveDealsIfFaulted()
        }
        await state.record(.init(method: "GET", path: "/api/v2/\(object)", page: "\(statuses.sorted()):\(since ?? -1):\(start)", status: 200))
        return Self.ok(rendered, additional: ["next_cursor": next ?? NSNull()] as [String: Any])
    }

    struct Bounds { var since: Int64?; var until: Int64? }

    static func isRFC3339Seconds(_ text: String) -> Bool {
        let chars = Array(text.utf8)
        guard chars.count == 20, chars[10] == UInt8(ascii: "T"), chars[19] == UInt8(ascii: "Z") else { return false }
        return !text.contains(".")
    }

    func pipelines() -> SimResponse {
        Self.ok([[
            "id": 1, "name": "Pipeline", "order_nr": 1, "is_deleted": false, "is_deal_probability_enabled": false,
            "add_time": "2024-01-01T00:00:00Z", "update_time": "2024-01-01T00:00:00Z",
        ]], additional: ["next_cursor": NSNull()])
    }

    func stages(pipelineID: String?) -> SimResponse {
        guard pipelineID == nil || pipelineID == "1" else { return Self.ok([Any](), additional: ["next_cursor": NSNull()]) }
        let stages: [[String: Any]] = PipedriveCompany.stageIDs.enumerated().map { index, id in
            ["id": Int(id)!, "order_nr": index + 1, "name": PipedriveCompany.stageNames[index], "is_deleted": false,
             "deal_probability": 100, "pipeline_id": 1, "is_deal_rot_enabled": false, "days_to_rotten": NSNull(),
             "add_time": "2024-01-01T00:00:00Z", "update_time": "2024-01-01T00:00:00Z"]
        }
        return Self.ok(stages, additional: ["next_cursor": NSNull()])
    }

    func users() async -> SimResponse {
        let users: [[String: Any]] = await state.data.owners.map { user in
            ["id": user.id, "name": user.properties["name"] ?? "", "email": user.properties["email"] ?? "",
             "default_currency": "JPY", "locale": "ja_JP", "lang": 1, "timezone_name": "Asia/Tokyo",
             "created": Self.v1(user.createdAt), "modified": Self.v1(user.updatedAt),
             "active_flag": user.properties["active_flag"] != "false", "is_admin": 0, "role_id": 1, "has_created_company": false]
        }
        await state.record(.init(method: "GET", path: "/api/v1/users", page: "", status: 200))
        return Self.ok(users)
    }

    /// The deal's updates feed, newest first, v1 paginated: `dealChange` rows for `stage_id` and
    /// `status` (old/new values as strings, v1 timestamps) rebuilt from the stage history, plus
    /// the activities and notes Pipedrive mixes in.
    func flow(dealID: String, query: FlatDictionary<Substring, Substring>) async -> SimResponse {
        guard let id = Int(dealID), let deal = await state.records("deals")[id] else {
            return Self.error(404, "Deal not found")
        }
        let start = max(0, Int(query["start"] ?? "0") ?? 0)
        let limit = min(max(1, Int(query["limit"] ?? "100") ?? 100), 500)
        var entries: [(at: Int64, row: [String: Any])] = []
        var changeID = id * 1_000
        func change(_ field: String, _ old: String?, _ new: String?, _ at: Int64) {
            changeID += 1
            entries.append((at, ["object": "dealChange", "timestamp": Self.v1(at), "data": [
                "id": changeID, "item_id": id, "user_id": Self.int(deal.properties["owner_id"]), "field_key": field,
                "old_value": old ?? NSNull(), "new_value": new ?? NSNull(), "is_bulk_update_flag": NSNull(),
                "log_time": Self.v1(at), "change_source": "app", "additional_data": [String: Any](),
            ] as [String: Any]]))
        }
        let history = deal.stageHistory
        if let first = history.first {
            change("add_time", nil, Self.v1(first.1), first.1)
            var stageID = first.0
            var status = "open"
            for (stage, at) in history.dropFirst() {
                if stage == "won" || stage == "lost" {
                    change("status", status, stage, at)
                    status = stage
                    continue
                }
                if status != "open" {
                    change("status", status, "open", at)
                    status = "open"
                }
                if stage != stageID {
                    change("stage_id", stageID, stage, at)
                    stageID = stage
                }
            }
            // Noise Pipedrive mixes into the same feed.
            changeID += 1
            entries.append((first.1 + 60_000, ["object": "note", "timestamp": Self.v1(first.1 + 60_000),
                                               "data": ["id": changeID, "deal_id": id, "content": "Intro call notes"] as [String: Any]]))
            change("value", nil, deal.properties["value"], first.1 + 120_000)
        }
        entries.sort { ($0.at, ($0.row["data"] as? [String: Any])?["id"] as? Int ?? 0) > ($1.at, ($1.row["data"] as? [String: Any])?["id"] as? Int ?? 0) }
        let page = Array(entries.dropFirst(start).prefix(limit))
        let more = start + page.count < entries.count
        var pagination: [String: Any] = ["start": start, "limit": limit, "more_items_in_collection": more]
        if more { pagination["next_start"] = start + page.count }
        await state.record(.init(method: "GET", path: "/api/v1/deals/\(id)/flow", page: "\(start)", status: 200))
        return SimulatorServer.json(200, ["success": true, "data": page.map(\.row), "additional_data": ["pagination": pagination]])
    }

    /// `POST /api/v1/activities`: `subject` and `type` are required; the activity is stored and
    /// listed by `/api/v2/activities` like any other.
    func createActivity(body: Data) async -> SimResponse {
        guard let fields = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else {
            return Self.error(400, "Request body is not valid JSON")
        }
        func text(_ key: String) -> String? {
            switch fields[key] {
            case let value as String: value.isEmpty ? nil : value
            case let value as NSNumber: value.stringValue
            default: nil
            }
        }
        guard let subject = text("subject") else { return Self.error(400, "Subject is required") }
        let type = text("type") ?? "task"
        guard PipedriveCompany.activityTypes.contains(type) else { return Self.error(400, "Activity type '\(type)' does not exist") }
        var properties = ["subject": subject, "type": type]
        properties["owner_id"] = text("user_id") ?? "\(PipedriveCompany.firstUserID)"
        for key in ["deal_id", "person_id", "org_id", "due_date", "due_time", "duration", "note"] { properties[key] = text(key) }
        properties["done"] = ["1", "true"].contains(text("done") ?? "0") ? "true" : "false"
        if let date = properties["due_date"], let at = CRMTimestamp.parse("\(date)T\(properties["due_time"] ?? "00:00"):00Z") {
            properties["due"] = "\(CRMTimestamp.millis(at))"
        }
        let record = await state.createPipedriveActivity(properties)
        var rendered: [String: Any] = [
            "id": record.id, "subject": subject, "type": type, "user_id": Self.int(properties["owner_id"]),
            "done": properties["done"] == "true", "due_date": properties["due_date"] ?? NSNull(),
            "due_time": properties["due_time"] ?? NSNull(), "duration": properties["duration"] ?? NSNull(),
            "deal_id": Self.int(properties["deal_id"]), "person_id": Self.int(properties["person_id"]),
            "org_id": Self.int(properties["org_id"]), "note": properties["note"] ?? NSNull(),
            "add_time": Self.v1(record.createdAt), "update_time": Self.v1(record.updatedAt), "active_flag": true,
        ]
        rendered["participants"] = properties["person_id"].flatMap(Int.init).map { [["person_id": $0, "primary_flag": true]] } ?? []
        await state.record(.init(method: "POST", path: "/api/v1/activities", page: "", status: 201))
        return SimulatorServer.json(201, ["success": true, "data": rendered, "additional_data": ["updates_story_id": record.id], "related_objects": [String: Any]()])
    }
}

/// Pipedrive's opaque `next_cursor`: base64 JSON naming the sort field, the last value and id.
struct PageCursor {
    var field: String
    var value: Int64
    var id: Int

    init(field: String, value: Int64, id: Int) {
        self.field = field
        self.value = value
        self.id = id
    }

    init?(encoded: String) {
        var text = encoded.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let field = object["field"] as? String, let value = object["fieldValue"] as? NSNumber,
              let id = object["id"] as? Int else { return nil }
        self.init(field: field, value: value.int64Value, id: id)
    }

    var encoded: String {
        let data = (try? JSONSerialization.data(withJSONObject: ["field": field, "fieldValue": value, "id": id] as [String: Any], options: [.sortedKeys])) ?? Data()
        return data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
