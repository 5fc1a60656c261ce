import CRMSyncCore
import Foundation

/// Pipedrive: v2 lists (`updated_since` + `sort_by=update_time` + `next_cursor`) for deals,
/// persons, organizations and activities; v1 users; v1 deal flow for stage history; deleted deals
/// from `status=deleted`. Every stamp is a whole second, so many records share one; the server's
/// keyset cursor carries a run across a tie, and the sync cursor's ids-at-stamp carry the next run.
public struct PipedriveConnector: CRMConnector {
    public let name: String
    public let kind = CRMKind.pipedrive
    /// The company URL (`https://acme.pipedrive.com`) or the API root; `/api/v1` and `/api/v2`
    /// are appended here.
    public let baseURL: String
    public let http: CRMHTTPClient
    public let pageSize: Int
    public let marginField: String?
    /// Flow requests in flight at once while a page of deals is read; the rate limiter still rules.
    public let flowConcurrency: Int

    public init(name: String, baseURL: String, http: CRMHTTPClient, pageSize: Int = 500, marginField: String? = nil, flowConcurrency: Int = 4) {
        self.name = name
        var root = baseURL
        while root.hasSuffix("/") { root.removeLast() }
        for suffix in ["/api/v1", "/api/v2", "/v1", "/api"] where root.hasSuffix(suffix) {
            root.removeLast(suffix.count)
        }
        self.baseURL = root
        self.http = http
        self.pageSize = min(max(pageSize, 1), 500)
        self.marginField = marginField
        self.flowConcurrency = max(1, flowConcurrency)
    }

    /// The header the API token travels in (never the query string, which ends up in logs).
    public static func authorization(token: String) -> [(String, String)] {
        [("x-api-token", token)]
    }

    public var streams: [SyncStream] {
        [.init("users", .owners), .init("organizations", .accounts), .init("persons", .contacts),
         .init("deals", .deals), .init("activities", .activities)]
    }

    public func pager(for stream: SyncStream, anchor: Date?, cursor: SyncCursor) -> any ChangePager {
        if stream.objectType == .owners { return PipedriveUserPager(connector: self, anchor: anchor) }
        return PipedriveListPager(connector: self, stream: stream, anchor: anchor, cursor: cursor)
    }

    /// Deleted deals (Pipedrive keeps them 30 days under `status=deleted`; merged-away deals are
    /// deleted too). Persons, organizations and activities have no delete channel in polling:
    /// `--full` marks the ones that vanished.
    public func deletions(for stream: SyncStream, since: Date?) async throws -> [Deletion] {
        guard stream.objectType == .deals else { return [] }
        var result: [Deletion] = []
        var cursor: String?
        repeat {
            let page: PipedriveWire.Envelope<[PipedriveWire.Deal]> = try await get(
                listURL("deals", since: since, cursor: cursor, extra: ["status": "deleted"]))
            for deal in page.data ?? [] {
                let at = deal.update_time.flatMap(CRMTimestamp.parse) ?? Date(timeIntervalSince1970: 0)
                if let since, at < since { continue }
                result.append(Deletion(objectType: .deals, externalID: String(deal.id), deletedAt: at))
            }
            cursor = page.additionalData?.nextCursor
        } while cursor != nil
        return result
    }

    // MARK: Requests

    func listURL(
        _ object: String, since: Date?, until: Date? = nil, sortBy: String = "update_time", cursor: String?, extra: [String: String] = [:]
    ) -> String {
        var query = ["sort_by=\(sortBy)", "sort_direction=asc", "limit=\(pageSize)"]
        if let since { query.append("updated_since=\(CRMTimestamp.rfc3339Seconds(since))") }
        if let until { query.append("updated_until=\(CRMTimestamp.rfc3339Seconds(until))") }
        for (key, value) in extra.sorted(by: { $0.key < $1.key }) { query.append("\(key)=\(Self.escape(value))") }
        if let cursor { query.append("cursor=\(Self.escape(cursor))") }
        return "\(baseURL)/api/v2/\(object)?" + query.joined(separator: "&")
    }

    static func escape(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-_.~,"))) ?? value
    }

    /// GET and decode an envelope; `success: false` in a 2xx is the CRM refusing, not a glitch.
    func get<T: Decodable>(_ url: String) async throws -> PipedriveWire.Envelope<T> {
        try await send(.init(url: url))
    }

    func send<T: Decodable>(_ request: CRMHTTPClient.Request) async throws -> PipedriveWire.Envelope<T> {
        let connector = name
        return try await http.send(request, classify: classify) { response in
            let envelope: PipedriveWire.Envelope<T>
            do {
                envelope = try JSONDecoder().decode(PipedriveWire.Envelope<T>.self, from: response.body)
            } catch {
                throw ConnectorError.malformedResponse(connector: connector, what: "\(T.self) did not decode (\(CRMHTTPClient.short(error)))")
            }
            if envelope.success == false {
                throw ConnectorError.http(connector: connector, status: response.status, message: envelope.error ?? "success: false without an error message")
            }
            return envelope
        }
    }

    /// Pipedrive's error envelope (`{"success": false, "error": ..., "errorCode": ...}`) turned
    /// into a one-line error. A 429 with the daily budget at zero is a quota, not a burst.
    func classify(_ response: CRMHTTPClient.Response) -> ConnectorError {
        let body = try? JSONDecoder().decode(PipedriveWire.ErrorBody.self, from: response.body)
        var message = body?.error ?? (response.body.isEmpty ? "no error body" : "non-JSON body")
        if let code = body?.code { message += " (\(code))" }
        switch response.status {
        case 401:
            return .authentication(connector: name, message: message)
        case 403 where body == nil:
            // Cloudflare answers clients that keep going after 429s with an HTML 403.
            return .http(connector: name, status: 403, message: "blocked with a non-JSON 403, likely after too many 429s; lower requests_per_second")
        case 429:
            let daily = ["x-daily-ratelimit-token-remaining", "x-daily-requests-left"].compactMap { response.headers.first(name: $0) }
            if daily.contains("0") { return .quotaExhausted(connector: name, message: "daily API token budget used up") }
            return .http(connector: name, status: 429, message: message)
        default:
            return .http(connector: name, status: response.status, message: message)
        }
    }

    /// Pipeline stages as Pipedrive lists them (for checking a mapping covers every stage id).
    public func stages() async throws -> [(id: String, name: String, pipeline: String?)] {
        var result: [(id: String, name: String, pipeline: String?)] = []
        var cursor: String?
        repeat {
            var url = "\(baseURL)/api/v2/stages?limit=\(pageSize)"
            if let cursor { url += "&cursor=\(Self.escape(cursor))" }
            let page: PipedriveWire.Envelope<[PipedriveWire.Stage]> = try await get(url)
            for stage in page.data ?? [] where stage.is_deleted?.value != true {
                result.append((String(stage.id), stage.name ?? "", stage.pipeline_id?.value))
            }
            cursor = page.additionalData?.nextCursor
        } while cursor != nil
        return result
    }

    /// A deal's `stage_id` and `status` changes from its flow (v1, newest first, `start` paging).
    func flowChanges(dealID: Int64) async throws -> [PipedriveStageHistory.Change] {
        var changes: [PipedriveStageHistory.Change] = []
        var start = 0
        while true {
            let page: PipedriveWire.Envelope<[PipedriveWire.FlowEntry]> = try await get(
                "\(baseURL)/api/v1/deals/\(dealID)/flow?start=\(start)&limit=500")
            for entry in page.data ?? [] {
                guard entry.object == "dealChange", let data = entry.data, let field = data.field_key,
                      field == "stage_id" || field == "status",
                      let at = (data.log_time ?? entry.timestamp).flatMap(CRMTimestamp.parse) else { continue }
                changes.append(.init(field: field, old: data.old_value?.value, new: data.new_value?.value, at: at, order: data.id ?? 0))
            }
            guard let pagination = page.additionalData?.pagination, pagination.moreItemsInCollection == true,
                  let next = pagination.nextStart ?? pagination.start.map({ $0 + (page.data?.count ?? 0) }), next > start else { break }
            start = next
        }
        return changes
    }

    func histories(for deals: [PipedriveWire.Deal]) async throws -> [Int64: [StageChange]] {
        try await withThrowingTaskGroup(of: (Int64, [StageChange]).self) { group in
            var result: [Int64: [StageChange]] = [:]
            var pending = deals[...]
            func launch() {
                guard let deal = pending.popFirst() else { return }
                group.addTask {
                    let changes = try await flowChanges(dealID: deal.id)
                    return (deal.id, PipedriveStageHistory.rebuild(
                        addedAt: deal.add_time.flatMap(CRMTimestamp.parse), stageID: deal.stage_id?.value,
                        status: deal.status, changes: changes))
                }
            }
            for _ in 0..<flowConcurrency { launch() }
            while let (id, history) = try await group.next() {
                result[id] = history
                launch()
            }
            return result
        }
    }

    // MARK: Activities created by crm-sync

    /// What the nurture engine asks a salesperson to do, as a Pipedrive activity.
    public struct ActivityDraft: Sendable {
        public var subject: String
        /// An activity type key: `call`, `meeting`, `task`, `email`, `deadline`, `lunch`.
        public var type: String
        public var due: Date?
        public var ownerID: String?
        public var dealID: String?
        public var personID: String?
        public var orgID: String?
        public var note: String?

        public init(subject: String, type: String = "task", due: Date? = nil, ownerID: String? = nil, dealID: String? = nil,
                    personID: String? = nil, orgID: String? = nil, note: String? = nil) {
            self.subject = subject
            self.type = type
            self.due = due
            self.ownerID = ownerID
            self.dealID = dealID
            self.personID = personID
            self.orgID = orgID
            self.note = note
        }
    }

    /// `POST /api/v1/activities`; returns the new activity's id. Not idempotent: a retry after a
    /// lost response can create a second activity.
    public func createActivity(_ draft: ActivityDraft) async throws -> String {
        var body: [String: Any] = ["subject": draft.subject, "type": draft.type, "done": 0]
        if let due = draft.due {
            let text = CRMTimestamp.pipedriveV1(due)
            body["due_date"] = String(text.prefix(10))
            body["due_time"] = String(text.dropFirst(11).prefix(5))
        }
        for (key, value) in [("user_id", draft.ownerID), ("deal_id", draft.dealID), ("person_id", draft.personID), ("org_id", draft.orgID)] {
            if let value { body[key] = Int(value) ?? value }
        }
        if let note = draft.note { body["note"] = note }
        let data = try JSONSerialization.data(withJSONObject: body, options: [.sortedKeys])
        let created: PipedriveWire.Envelope<PipedriveWire.CreatedActivity> = try await send(
            .init(method: .POST, url: "\(baseURL)/api/v1/activities", body: data))
        guard let id = created.data?.id else {
            throw ConnectorError.malformedResponse(connector: name, what: "created activity without an id")
        }
        return String(id)
    }
}

extension PipedriveConnector: PipelineListing {
    /// `GET /api/v2/stages`, in the order Pipedrive lists them; the pipeline is its numeric id.
    public func pipelineStages() async throws -> [PipelineStage] {
        try await stages().enumerated().map { index, stage in
            PipelineStage(pipeline: stage.pipeline ?? "", pipelineLabel: nil, stage: stage.id, label: stage.name, displayOrder: index)
        }
    }
}

