import AsyncHTTPClient
import CRMSimulator
import CRMSyncCore
import Foundation
import Hummingbird
import Logging
import NIOCore
import Testing

/// The simulator speaks HubSpot's wire format and enforces its limits.
@Suite struct SimulatorTests {
    func withSimulator(_ state: SimulatorState, _ body: @Sendable (Int) async throws -> Void) async throws {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        var quiet = Logger(label: "simulator-test")
        quiet.logLevel = .critical
        let app = SimulatorServer(kind: .hubspot, state: state).application(logger: quiet, onRunning: { continuation.yield($0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            try await body(port)
            group.cancelAll()
        }
    }

    func post(_ port: Int, _ path: String, _ json: String, token: String = "sim-token") async throws -> (Int, [String: Any]) {
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path)")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 10 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
        return (Int(response.status.code), object)
    }

    @Test func searchSortsPagesAndStopsAtTheTenThousandCeiling() async throws {
        let data = SimulatedDataset.generate(seed: 3, deals: 300, now: Date(timeIntervalSince1970: 1_795_000_000))
        try await withSimulator(SimulatorState(data: data, rateLimit: (1000, 1000))) { port in
            let (status, page) = try await post(port, "/crm/v3/objects/deals/search",
                #"{"filterGroups":[],"sorts":[{"propertyName":"hs_lastmodifieddate","direction":"ASCENDING"}],"properties":["dealstage"],"limit":100}"#)
            #expect(status == 200)
            let results = try #require(page["results"] as? [[String: Any]])
            #expect(results.count == 100)
            let stamps = results.compactMap { ($0["properties"] as? [String: Any])?["hs_lastmodifieddate"] as? String }.compactMap(CRMTimestamp.parse)
            #expect(stamps == stamps.sorted())
            #expect(((page["paging"] as? [String: Any])?["next"] as? [String: Any])?["after"] as? String == "100")
            let (ceiling, error) = try await post(port, "/crm/v3/objects/deals/search", #"{"limit":100,"after":"9950"}"#)
            #expect(ceiling == 400)
            #expect(error["category"] as? String == "VALIDATION_ERROR")
            let (unauthorized, _) = try await post(port, "/crm/v3/objects/deals/search", "{}", token: "wrong")
            #expect(unauthorized == 401)
        }
    }

    @Test func theAccountsRateLimitIsAnsweredWithHubSpots429() async throws {
        let data = SimulatedDataset.generate(seed: 3, deals: 10, now: Date())
        // A stopped clock: the bucket never refills, so the answer does not depend on how fast this machine is.
        let frozen = Date()
        try await withSimulator(SimulatorState(data: data, rateLimit: (100, 2), clock: { frozen })) { port in
            var statuses: [Int] = []
            for _ in 0..<6 {
                statuses.append(try await post(port, "/crm/v3/objects/deals/search", #"{"limit":1}"#).0)
            }
            #expect(statuses.contains(429))
            #expect(statuses.first == 200)
        }
    }

    @Test func faultSpecsParse() throws {
        let spec = try FaultSpec(parsing: "429=0.1,truncate=0.05,out_of_order=0.2")
        #expect(spec.rateLimited == 0.1 && spec.truncate == 0.05 && spec.outOfOrder == 0.2)
        #expect(throws: FaultSpec.ParseError.self) { try FaultSpec(parsing: "gremlins=0.5") }
        #expect(try FaultSpec(parsing: "all") == .all)
    }
}
