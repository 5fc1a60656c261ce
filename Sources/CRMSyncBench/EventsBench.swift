import ArgumentParser
import AsyncHTTPClient
import CRMSyncApp
import CRMSyncConfig
import CRMSyncCore
import CRMSyncServer
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// The webhook receiver in-process on loopback, driven by concurrent HTTP clients posting signed
/// engagement events: durable events per second and latency. Baselines in the same run: one
/// autocommit INSERT per event (what a receiver without group commit pays), and one multi-row
/// INSERT of the same rows (what the database can take at best).
struct EventsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Throughput and latency of POST /webhooks/events (group commit), with same-run INSERT baselines.")

    @Option(help: "Concurrent HTTP connections.") var connections = 32
    @Option(help: "Seconds to drive the receiver.") var seconds = 10.0
    @Option(help: "Events in each request (1 = one event per request, the hard case).") var eventsPerRequest = 1
    @Option(help: "Group commit: a batch closes at this many events.") var batchEvents = 2_000
    @Option(help: "Group commit: linger before a batch closes, in milliseconds.") var lingerMs = 1.0
    @Option(help: "Group commit: commits in flight at once.") var commits = 2
    @OptionGroup var server: ServerOptions

    func run() async throws {
        do { try await measure() } catch { throw ValidationError(DatabaseError.describe(error)) }
    }

    struct ClientResult: Sendable {
        var latencies: [Double] = []
        var accepted = 0
        var failed = 0
    }

    func measure() async throws {
        #if DEBUG
        let build = "debug build (use -c release for real figures)"
        #else
        let build = "release build"
        #endif
        let server = try server.server()
        let cores = ProcessInfo.processInfo.activeProcessorCount
        print("events benchmark: \(connections) connections, \(eventsPerRequest) event(s)/request, \(Bench.format(seconds, 0)) s, \(cores) cores, \(build), PostgreSQL \(server.host):\(server.port)")
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        let logger = Bench.logger
        try await TestDatabase.with(server: server, maxConnections: max(4, commits + 2)) { client, _ in
            let config = AppConfig(events: EventsConfig(secret: secret))
            let receiver = WebhookReceiver(
                config: config, client: client, logger: logger,
                batching: .init(maxEvents: batchEvents, linger: .microseconds(Int64(lingerMs * 1000)), concurrentCommits: commits))
            let (ports, portSink) = AsyncStream<Int>.makeStream()
            let group = ServiceGroup(configuration: .init(
                services: receiver.services(host: "127.0.0.1", port: 0, logger: logger) { portSink.yield($0) }, logger: logger))
            let (results, ceiling) = try await withThrowingTaskGroup(of: Void.self) { services in
                services.addTask { try await group.run() }
                var iterator = ports.makeAsyncIterator()
                guard let port = await iterator.next() else { throw CancellationError() }
                let results = try await drive(port: port, secret: secret)
                // The same load generator against an endpoint that does no work: the ceiling that
                // HTTP on loopback and the client sharing these cores put on any receiver.
                let ceiling = try await drive(port: port, secret: secret, path: "/healthz")
                await group.triggerGracefulShutdown()
                try await services.waitForAll()
                return (results, ceiling)
            }
            let accepted = results.reduce(0) { $0 + $1.accepted } * eventsPerRequest
            let failed = results.reduce(0) { $0 + $1.failed }
            let latencies = results.flatMap(\.latencies).sorted()
            let durable = try await client.query("SELECT count(*)::int8 FROM crm.inbox", logger: logger).collect().first!.decode(Int64.self)
            /// The `p` quantile of sorted latencies in seconds, in milliseconds.
            func milliseconds(_ sorted: [Double], _ p: Double) -> Double {
                sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))] * 1000
            }
            func percentile(_ p: Double) -> Double { milliseconds(latencies, p) }
            print("receiver: \(Bench.format(Double(accepted) / seconds, 0)) durable events/s (\(accepted) acknowledged, \(durable) rows in crm.inbox, \(failed) failed requests); latency p50 \(Bench.format(percentile(0.5))) ms, p99 \(Bench.format(percentile(0.99))) ms, max \(Bench.format(percentile(1.0))) ms")
            if Int64(accepted) != durable { print("WARNING: acknowledged and stored counts differ") }
            let noop = ceiling.flatMap(\.latencies).sorted()
            let noopRate = Double(ceiling.reduce(0) { $0 + $1.accepted }) / seconds
            func noopPercentile(_ p: Double) -> Double { milliseconds(noop, p) }
            print("baseline: GET /healthz from the same \(connections) connections (no signature, no database) \(Bench.format(noopRate, 0)) requests/s, p50 \(Bench.format(noopPercentile(0.5))) ms, p99 \(Bench.format(noopPercentile(0.99))) ms; the receiver's requests/s are \(Bench.format(Double(accepted) / Double(eventsPerRequest) / seconds / max(noopRate, 1), 2))x that ceiling")

            // Baselines on the same server, same row shape.
            let rows = min(max(accepted, 1_000), 20_000)
            let events = (0..<rows).map { n in
                InboxEvent(deliveryID: "base_\(n)", eventType: "email.opened", occurredAt: Date(), recordKey: "hubspot:\(n % 97)",
                           payload: #"{"type":"email.opened","id":"base_\#(n)","contact":{"email":"c@example.com"}}"#)
            }
            let singleCount = min(rows, 3_000)
            var start = ContinuousClock.now
            for event in events.prefix(singleCount) {
                try await EventInbox.commit([.init(source: "single", event: event)], client: client, logger: logger)
            }
            let single = Double(singleCount) / Bench.seconds(since: start)
            start = ContinuousClock.now
            try await EventInbox.commit(events.map { .init(source: "bulk", event: $0) }, client: client, logger: logger)
            let bulk = Double(rows) / Bench.seconds(since: start)
            print("baseline: one INSERT per event in a loop \(Bench.format(single, 0)) events/s (\(singleCount) rows); one INSERT of \(rows) rows \(Bench.format(bulk, 0)) events/s")
            print("peak memory \(Bench.format(Bench.peakMemoryMiB(), 0)) MiB")
        }
    }

    /// `connections` clients posting signed events for `seconds`; with `path`, GETs of that path instead.
    func drive(port: Int, secret: String, path: String? = nil) async throws -> [ClientResult] {
        let signer = try StandardWebhookSigner(secret: secret)
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = connections
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        let perRequest = eventsPerRequest
        let results = try await withThrowingTaskGroup(of: ClientResult.self) { group in
            let stride = connections
            for client in 0..<connections {
                group.addTask {
                    var result = ClientResult()
                    var sent = 0
                    while ContinuousClock.now < deadline {
                        let n = client + sent * stride
                        sent += 1
                        let ids = (0..<perRequest).map { "ev_\(n)_\($0)" }
                        let events = ids.map { #"{"type":"email.opened","id":"\#($0)","occurred_at":"2026-11-02T01:23:45Z","contact":{"email":"c\#(n % 997)@example.com","external_id":"hubspot:\#(n % 997)"},"campaign":"wp","sequence":"s","step":1}"# }
                        let body = perRequest == 1 ? events[0] : "[" + events.joined(separator: ",") + "]"
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)\(path ?? "/webhooks/events")")
                        request.method = path == nil ? .POST : .GET
                        let timestamp = Int64(Date().timeIntervalSince1970)
                        request.headers.add(name: "content-type", value: "application/json")
                        request.headers.add(name: "webhook-id", value: "msg_\(n)")
                        request.headers.add(name: "webhook-timestamp", value: "\(timestamp)")
                        request.headers.add(name: "webhook-signature", value: signer.signature(id: "msg_\(n)", timestamp: timestamp, body: Data(body.utf8)))
                        if path == nil { request.body = .bytes(ByteBuffer(string: body)) }
                        let start = ContinuousClock.now
                        do {
                            let response = try await http.execute(request, timeout: .seconds(30))
                            _ = try await response.body.collect(upTo: 1 << 16)
                            if response.status == .ok {
                                result.accepted += 1
                                result.latencies.append(Bench.seconds(since: start))
                            } else {
                                result.failed += 1
                            }
                        } catch {
                            result.failed += 1
                        }
                    }
                    return result
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        try await http.shutdown()
        return results
    }
}
