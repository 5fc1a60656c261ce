import AsyncHTTPClient
import CRMSimulator
import CRMSyncCore
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// The Pipedrive simulator speaks Pipedrive's wire format and enforces its limits.
@Suite struct PipedriveSimulatorTests {
    func withSimulator(_ state: SimulatorState, _ body: @Sendable (Int) async throws -> Void) async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var quiet = Logger(label: "simulator-test")
        quiet.logLevel = .critical
        let app = SimulatorServer(kind: .pipedrive, state: state).application(logger: quiet, onRunning: { continuation.yield($0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await body(port)
            group.cancelAll()
        }
    }

    struct Reply: Sendable {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    }

    func call(_ port: Int, _ path: String, method: HTTPMethod = .GET, json: String? = nil, token: String? = "sim-token") async throws -> Reply {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = method
        if let token { request.headers.add(name: "x-api-token", value: token) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 10 << 20)
        var headers: [String: String] = [:]
        for header in response.headers { headers[header.name.lowercased()] = header.value }
        return Reply(status: Int(response.status.code), headers: headers, body: Data(buffer: body))
    }

    @Test func theSameSeedGivesTheSameCompany() {
        let now = Date(timeIntervalSince1970: 1_795_000_000)
        let a = PipedriveCompany.generate(seed: 7, deals: 200, now: now)
        let b = PipedriveCompany.generate(seed: 7, deals: 200, now: now)
        #expect(a.objects == b.objects)
        #expect(a.owners == b.owners)
        #expect(a.objects["deals"]!.values.allSatisfy { $0.updatedAt % 1000 == 0 }, "whole seconds, as Pipedrive's stamps")
    }

    @Test func v2ListsUseTheEnvelopeRFC3339AndAKeysetCursor() async throws {
        let data = PipedriveCompany.generate(seed: 3, deals: 300, now: Date(timeIntervalSince1970: 1_795_000_000))
        try await withSimulator(SimulatorState(data: data, rateLimit: (1000, 1000))) { port in
            let first = try await call(port, "/api/v2/deals?sort_by=update_time&limit=100")
            #expect(first.status == 200)
            let body = first.json
            #expect(body["success"] as? Bool == true)
            let deals = try #require(body["data"] as? [[String: Any]])
            #expect(deals.count == 100)
            let deal = deals[0]
            #expect(deal["person_id"] is Int && deal["org_id"] is Int && deal["stage_id"] is Int)
            let stamp = try #require(deal["update_time"] as? String)
            #expect(stamp.count == 20 && stamp.hasSuffix("Z"), "RFC 3339 without fraction: \(stamp)")
            let cursor = try #require((body["additional_data"] as? [String: Any])?["next_cursor"] as? String)
            let second = try await call(port, "/api/v2/deals?sort_by=update_time&limit=100&cursor=\(cursor)")
            let next = try #require(second.json["data"] as? [[String: Any]])
            #expect(Set(next.compactMap { $0["id"] as? Int }).isDisjoint(with: deals.compactMap { $0["id"] as? Int }))

            let legacy = try await call(port, "/api/v2/persons?limit=1&api_token=sim-token", token: nil)
            #expect(legacy.status == 200, "the legacy api_token query parameter is accepted")
            let denied = try await call(port, "/api/v2/persons", token: "wrong")
            #expect(denied.status == 401)
            #expect(denied.json["success"] as? Bool == false)
            #expect(denied.json["error"] as? String == "unauthorized access")

            let flow = try await call(port, "/api/v1/deals/\(deal["id"] as! Int)/flow")
            let entries = try #require(flow.json["data"] as? [[String: Any]])
            let times = entries.compactMap { $0["timestamp"] as? String }
            #expect(times == times.sorted(by: >), "newest first")
            #expect(times.allSatisfy { $0.count == 19 && $0.dropFirst(10).first == " " }, "v1 timestamps")
        }
    }

    @Test func theAccountsRateLimitIsAnsweredWithPipedrives429() async throws {
        let data = PipedriveCompany.generate(seed: 3, deals: 10, now: Date())
        // A stopped clock: the bucket never refills, so the answer does not depend on how fast this machine is.
        let frozen = Date()
        try await withSimulator(SimulatorState(data: data, rateLimit: (2, 2), clock: { frozen })) { port in
            var replies: [Reply] = []
            for _ in 0..<6 { replies.append(try await call(port, "/api/v1/users")) }
            #expect(replies.first?.status == 200)
            let limited = try #require(replies.first { $0.status == 429 })
            #expect(limited.headers["x-ratelimit-limit"] == "4")
            #expect(limited.headers["x-ratelimit-remaining"] == "0")
            #expect(limited.headers["x-ratelimit-reset"] != nil)
            #expect(limited.json["success"] as? Bool == false)
            #expect(limited.json["errorCode"] as? Int == 429)
        }
    }

    @Test func creatingAnActivityValidatesAndRecordsIt() async throws {
        let state = SimulatorState(data: PipedriveCompany.generate(seed: 3, deals: 10, now: Date()), rateLimit: (1000, 1000))
        try await withSimulator(state) { port in
            let missing = try await call(port, "/api/v1/activities", method: .POST, json: #"{"type":"call"}"#)
            #expect(missing.status == 400)
            #expect(missing.json["error"] as? String == "Subject is required")
            let created = try await call(port, "/api/v1/activities", method: .POST,
                                         json: #"{"subject":"Follow-up call","type":"call","due_date":"2026-11-03","due_time":"09:30","user_id":9001,"deal_id":3,"person_id":3}"#)
            #expect(created.status == 201)
            let id = try #require((created.json["data"] as? [String: Any])?["id"] as? Int)
            #expect(await state.activitiesCreatedThroughAPI.map(\.id) == [id])
        }
    }
}
