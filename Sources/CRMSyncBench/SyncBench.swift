import ArgumentParser
import AsyncHTTPClient
import CRMSimulator
import CRMSyncApp
import CRMSyncConfig
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import PostgresNIO

/// End-to-end sync throughput: a simulated HubSpot account over loopback HTTP into PostgreSQL,
/// against `COPY` of every row the sync wrote, into tables of the same shape, in the same run.
struct SyncBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Deals/s from the simulator into PostgreSQL, and the ratio to COPY of the same rows.")

    @Option(help: "Deals in the simulated CRM (each with contacts, a company, stage history).") var deals = 20_000
    @Option(help: "Records per search page (HubSpot allows up to 200).") var pageSize = 200
    @Option(help: "Seed of the simulated data.") var seed: UInt64 = 7
    @Flag(help: "Also sync into a second database with the workspace stamp (crm.stamp_workspace) disabled, and print the ratio of the two.") var compareWorkspaceStamp = false
    @OptionGroup var server: ServerOptions

    /// Tables a sync writes, copied back in the baseline.
    static let tables = ["owners", "accounts", "contacts", "deals", "deal_contacts", "deal_accounts", "stage_history", "activities"]

    func run() async throws {
        do { try await measure() } catch { throw ValidationError(DatabaseError.describe(error)) }
    }

    func measure() async throws {
        let logger = Bench.logger
        let root = FileManager.default.currentDirectoryPath
        let data = SimulatedDataset.generate(seed: seed, deals: deals, now: Date())
        let state = SimulatorState(data: data, seed: seed, rateLimit: (1_000_000, 1_000_000))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let simulator = SimulatorServer(kind: .hubspot, state: state).application(logger: logger, onRunning: { continuation.yield($0) })
        let server = try server.server()
        print("sync benchmark: \(deals) deals, page size \(pageSize), PostgreSQL \(server.host):\(server.port)")
        try await withLocalServices([simulator], logger: logger) {
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else { throw ValidationError("the simulator did not start") }
            let config = ConnectorConfig(
                name: "bench", kind: .hubspot, baseURL: "http://127.0.0.1:\(port)", token: "sim-token",
                mappingPath: "\(root)/Mappings/hubspot.yaml", mapping: try MappingLoader.load(path: "\(root)/Mappings/hubspot.yaml"),
                overlap: .seconds(300), requestsPerSecond: 100_000, searchRequestsPerSecond: 100_000, pageSize: pageSize, maxAttempts: 3)
            var syncTimes: [Bool: Double] = [:]
            for stamped in compareWorkspaceStamp ? [true, false] : [true] {
            syncTimes[stamped] = try await TestDatabase.with(server: server) { client, _ in
                if !stamped {
                    try await client.query(
                        """
                        DO $$ DECLARE t record; BEGIN
                            FOR t IN SELECT tgrelid::regclass AS rel, tgname FROM pg_trigger WHERE tgname LIKE '%\\_workspace' LOOP
                                EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', t.rel, t.tgname);
                            END LOOP;
                        END $$
                        """, logger: logger)
                    print("(workspace stamp disabled)")
                }
                let start = ContinuousClock.now
                let summary = try await HTTPClient.shared.withConnector(config, logger: logger) { crm in
                    try await SyncEngine(config: config, connector: crm, client: client, logger: logger).run(full: false)
                }
                let syncSeconds = Bench.seconds(since: start)
                let (rows, copySeconds) = try await copyBaseline(client: client, logger: logger)
                let dealCount = try await client.query("SELECT count(*)::int8 FROM crm.deals", logger: logger).collect().first!.decode(Int64.self)
                print("sync:     \(summary.records) records (\(dealCount) deals) in \(Bench.format(syncSeconds)) s, \(summary.requests) HTTP requests")
                print("          \(Int(Double(dealCount) / syncSeconds)) deals/s, \(Int(Double(rows) / syncSeconds)) rows/s end to end")
                print("COPY:     the same \(rows) rows into tables of the same shape in \(Bench.format(copySeconds)) s (\(Int(Double(rows) / copySeconds)) rows/s)")
                print("ratio:    sync takes \(Bench.format(syncSeconds / copySeconds, 1))x the time of COPY of its rows")
                print("memory:   peak RSS \(Bench.format(Bench.peakMemoryMiB(), 0)) MiB (includes the simulator's data)")
                return syncSeconds
            }
            }
            if let on = syncTimes[true], let off = syncTimes[false] {
                print("stamp:    sync with the workspace stamp takes \(Bench.format(on / off, 3))x the time without it")
            }
        }
    }

    /// Reads back every row the sync wrote as COPY text (untimed), then times COPY of them into
    /// `public.copy_<table>` created `LIKE crm.<table> INCLUDING ALL` (same indexes and keys).
    func copyBaseline(client: PostgresClient, logger: Logger) async throws -> (rows: Int, seconds: Double) {
        var payloads: [(String, [String])] = []
        for table in Self.tables {
            try await client.query(PostgresQuery(unsafeSQL: "CREATE TABLE public.copy_\(table) (LIKE crm.\(table) INCLUDING ALL)"), logger: logger)
            // One COPY text line per row: each column's text form, tab-separated, `\N` for NULL, escaped.
            let columns = try await client.query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'crm' AND table_name = \(table) ORDER BY ordinal_position",
                logger: logger
            ).collect().map { try $0.decode(String.self) }
            let fields = columns.map { column in
                #"coalesce(replace(replace(replace("\#(column)"::text, E'\\', E'\\\\'), E'\t', E'\\t'), E'\n', E'\\n'), E'\\N')"#
            }
            let lines = try await client.query(
                PostgresQuery(unsafeSQL: "SELECT concat_ws(E'\\t', \(fields.joined(separator: ", "))) FROM crm.\(table)"), logger: logger
            ).collect().map { try $0.decode(String.self) }
            payloads.append((table, lines))
        }
        let rows = payloads.reduce(0) { $0 + $1.1.count }
        let start = ContinuousClock.now
        try await client.withConnection { connection in
            for (table, lines) in payloads where !lines.isEmpty {
                try await connection.copyFrom(table: "copy_\(table)", logger: logger) { writer in
                    var buffer = ByteBuffer()
                    for line in lines {
                        buffer.writeString(line)
                        buffer.writeInteger(UInt8(ascii: "\n"))
                        if buffer.readableBytes > 1 << 20 {
                            try await writer.write(buffer)
                            buffer.clear()
                        }
                    }
                    if buffer.readableBytes > 0 { try await writer.write(buffer) }
                }
            }
        }
        return (rows, Bench.seconds(since: start))
    }
}
