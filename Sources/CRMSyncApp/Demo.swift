import AsyncHTTPClient
import CRMSimulator
import CRMSyncConfig
import CRMSyncConnectors
import CRMSyncCore
import CRMSyncServer
import CRMSyncStorage
import Foundation
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// The main job on the embedded default: a simulated HubSpot on loopback, synced into PostgreSQL;
/// engagement events from the simulated MA tool posted, signed, to the webhook receiver; costs
/// imported; a nurture tick; attribution refreshed; the ROI report printed and the HTML report
/// written.
public struct Demo: Sendable {
    public var runtime: Runtime
    public var deals: Int
    public var seed: UInt64
    /// Where the HTML report goes.
    public var htmlPath: String
    public var print: @Sendable (String) -> Void
    public var progress: @Sendable (String) -> Void

    public init(runtime: Runtime, deals: Int = 2_000, seed: UInt64 = 42, htmlPath: String = ".crm-sync/report.html",
                print: @escaping @Sendable (String) -> Void, progress: @escaping @Sendable (String) -> Void) {
        self.runtime = runtime
        self.deals = deals
        self.seed = seed
        self.htmlPath = htmlPath
        self.print = print
        self.progress = progress
    }

    public static let referenceDate = Date(timeIntervalSince1970: 1_795_132_800)  // 2026-11-21T00:00:00Z

    public func run() async throws {
        let logger = runtime.logger
        let mappingPath = ResourceLocator.locate("Mappings/hubspot.yaml") ?? "Mappings/hubspot.yaml"
        let mapping = try MappingLoader.load(path: mappingPath)
        let costsPath = ResourceLocator.locate("examples/costs.csv") ?? "examples/costs.csv"
        let eventsSecret = "whsec_" + Data((0..<24).map { _ in UInt8.random(in: 0...255) }).base64EncodedString()
        // A fixed reference time keeps the data identical from run to run, so a second demo run is a
        // true incremental sync that finds nothing new.
        let data = SimulatedDataset.generate(seed: seed, deals: deals, now: Demo.referenceDate)
        let simulator = SimulatorServer(kind: .hubspot, state: SimulatorState(data: data, seed: seed, rateLimit: (200, 100)))

        try await runtime.withDatabase { client in
            progress("migrate: schema is current")
            let (simPorts, simContinuation) = AsyncStream.makeStream(of: Int.self)
            let simApp = simulator.application(logger: logger, onRunning: { port in simContinuation.yield(port) })
            let (webPorts, webContinuation) = AsyncStream.makeStream(of: Int.self)
            let router = WebhookRouter(settings: .init(eventsSecret: eventsSecret), client: client, logger: logger).router()
            let web = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                                  onServerRunning: { channel in webContinuation.yield(channel.localAddress?.port ?? 0) },
                                  logger: logger)
            try await withLocalServices([simApp, web], logger: logger) {
                var simIterator = simPorts.makeAsyncIterator()
                var webIterator = webPorts.makeAsyncIterator()
                guard let simPort = await simIterator.next(), let webPort = await webIterator.next() else { return }
                progress("simulator: HubSpot with \(deals) deals on http://127.0.0.1:\(simPort)")

                // 1. sync
                let connector = ConnectorConfig(
                    name: "hubspot-demo", kind: .hubspot, baseURL: "http://127.0.0.1:\(simPort)", token: simulator.token,
                    mappingPath: mappingPath, mapping: mapping, requestsPerSecond: 150, searchRequestsPerSecond: 80)
                let summary = try await HTTPClient.shared.withConnector(connector, logger: logger) { crm in
                    try await SyncEngine(config: connector, connector: crm, client: client, logger: logger, progress: progress).run(full: false)
                }
                progress("sync: \(summary)")

                // 2. webhooks: the MA tool's engagement events, signed, in batches
                let signer = try StandardWebhookSigner(secret: eventsSecret)
                var accepted = 0
                for (index, chunk) in data.events.chunked(200).enumerated() {
                    let body = try JSONEncoder().encode(Array(chunk))
                    let id = "msg_demo_\(seed)_\(index)"
                    let timestamp = Int64(Date().timeIntervalSince1970)
                    var request = HTTPClientRequest(url: "http://127.0.0.1:\(webPort)/webhooks/events")
                    request.method = .POST
                    request.headers.add(name: "content-type", value: "application/json")
                    request.headers.add(name: "webhook-id", value: id)
                    request.headers.add(name: "webhook-timestamp", value: "\(timestamp)")
                    request.headers.add(name: "webhook-signature", value: signer.signature(id: id, timestamp: timestamp, body: body))
                    request.body = .bytes(ByteBuffer(bytes: body))
                    let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
                    guard response.status == .ok else { throw DemoError.webhookRefused(Int(response.status.code)) }
                    accepted += chunk.count
                }
                let touches = try await EventInbox().applyEngagementEvents(client: client, logger: logger)
                progress("webhooks: \(accepted) engagement events accepted, \(touches) applied as touches")
            }

            // 3. costs
            let lines = try CostCSV.parse(try String(contentsOfFile: costsPath, encoding: .utf8))
            try await CostStore().importLines(lines, client: client, logger: logger)
            progress("costs: \(lines.count) lines from \(costsPath)")

            // 4. nurture: one tick of the shipped sequences at the reference time
            let sequencesPath = ResourceLocator.locate(NurtureSetup.defaultDirectory) ?? NurtureSetup.defaultDirectory
            let definitions = NurtureDefinitions(
                sequences: try SequenceLoader.loadDirectory(sequencesPath),
                policies: [ConnectorNurturePolicy(connector: "hubspot-demo", salesOwned: mapping.salesOwned, policy: mapping.policy)])
            let nurture = try await NurtureTick(client: client, logger: logger).run(definitions: definitions, now: Demo.referenceDate)
            progress("nurture: \(nurture)")

            // 5. attribution and the report
            let attribution = runtime.config.attribution
            try await ReportReader().refreshAttribution(
                grossMargin: attribution.grossMargin, lookbackDays: attribution.lookbackDays,
                halfLifeDays: attribution.timeDecayHalfLifeDays, client: client, logger: logger)
            let rows = try await ReportReader().roi(model: nil, client: client, logger: logger)
            print("ROI by campaign (gross margin \(NSDecimalNumber(decimal: attribution.grossMargin).stringValue)):")
            print(ROIReport.render(rows, format: .table))

            // 6. the HTML report, for what a table does not show well (funnel, rates by step)
            let html = HTMLReport.render(try await DashboardReader().read(client: client, logger: logger))
            let url = URL(fileURLWithPath: htmlPath)
            do {
                try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(html.utf8).write(to: url, options: .atomic)
            } catch {
                throw DemoError.reportNotWritten(htmlPath, error.localizedDescription)
            }
            print("HTML report: \(url.standardizedFileURL.path)")
        }
    }
}

public enum DemoError: Error, CustomStringConvertible {
    case webhookRefused(Int)
    case reportNotWritten(String, String)
    public var description: String {
        switch self {
        case .webhookRefused(let status): "demo: the webhook receiver answered HTTP \(status)"
        case .reportNotWritten(let path, let reason): "demo: --html \(path): cannot write the report: \(reason)"
        }
    }
}

extension HTTPClient {
    /// Builds the connector for `config` on this client and runs `body` with it.
    public func withConnector<T: Sendable>(
        _ config: ConnectorConfig, logger: Logger, timeout: Duration? = nil, _ body: (any CRMConnector) async throws -> T
    ) async throws -> T {
        let connector = try ConnectorFactory.make(config, http: self, logger: logger, timeout: timeout)
        return try await body(connector)
    }
}

extension Array {
    func chunked(_ size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
