import AsyncHTTPClient
import CRMSyncConfig
import CRMSyncConnectors
import CRMSyncCore
import CRMSyncStorage
import Foundation
import Logging
import Metrics
import PostgresNIO

/// Runs one sync of one connector: every stream from its cursor (or from scratch with `full`),
/// page by page, each page and its cursor committed together; then the delete channels; with
/// `full`, records the CRM no longer returns are marked deleted; last, the attribution figures of
/// the deals it changed, so the reporting views reflect the sync when `run` returns.
public struct SyncEngine: Sendable {
    public struct Summary: Sendable, CustomStringConvertible {
        public var connector: String
        public var records = 0
        public var pages = 0
        public var stageChanges = 0
        public var deletions = 0
        public var stale = 0
        public var retries = 0
        public var rateLimited = 0
        public var requests = 0
        public var unmappedStages: Set<String> = []
        /// Deals whose attribution the run recomputed at its end (see `ReportReader.refreshPendingAttribution`).
        public var attributionDeals = 0
        public var seconds = 0.0
        /// Names this run in the logs (`run` metadata), so one sync's lines can be picked out of
        /// several replicas' interleaved output.
        public var run = ""

        public var description: String {
            let rate = seconds > 0 ? Double(records) / seconds : 0
            var line = "\(connector): \(records) records in \(pages) pages, \(stageChanges) stage changes, \(deletions) deletions, \(requests) requests, \(retries) retries, \(rateLimited) rate-limited, \(String(format: "%.1f", seconds)) s (\(Int(rate)) records/s)"
            if !unmappedStages.isEmpty { line += "; unmapped stages: \(unmappedStages.sorted().joined(separator: ", "))" }
            return line
        }
    }

    public let config: ConnectorConfig
    public let connector: any CRMConnector
    public let client: PostgresClient
    public let logger: Logger
    /// Receives a progress line now and then (stderr in the CLI).
    public let progress: @Sendable (String) -> Void
    /// Who runs this sync, as `crm.sync_runs.replica` records it (the worker name under `serve`).
    public let replica: String

    public init(config: ConnectorConfig, connector: any CRMConnector, client: PostgresClient, logger: Logger,
                replica: String = WorkLeases.workerName(), progress: @escaping @Sendable (String) -> Void = { _ in }) {
        self.config = config
        self.connector = connector
        self.client = client
        self.logger = logger
        self.replica = replica
        self.progress = progress
    }

    /// Runs the sync and records it in `crm.sync_runs` (started, then succeeded or failed with
    /// its error), so every replica and SQL user sees the same history.
    public func run(full: Bool) async throws -> Summary {
        let run = String(UUID().uuidString.prefix(8)).lowercased()
        try await registerConnector()
        let log = SyncRunLog(client: client, logger: logger)
        let id = try await log.start(run: run, connector: config.name, full: full, replica: replica)
        do {
            let summary = try await sync(full: full, run: run)
            try await log.finish(id: id, totals: .init(records: summary.records, pages: summary.pages, retries: summary.retries), error: nil)
            return summary
        } catch {
            let stats = connector.http.stats
            // Recorded even when the run was cancelled (shutdown grace): a detached write, so the
            // cancellation that ended the sync does not also lose the record of it.
            let message = DatabaseError.describe(error)
            try? await Task.detached { [log] in
                try await log.finish(id: id, totals: .init(records: 0, pages: 0, retries: stats.retries), error: message)
            }.value
            throw error
        }
    }

    private func sync(full: Bool, run: String) async throws -> Summary {
        let started = ContinuousClock.now
        var summary = Summary(connector: config.name)
        summary.run = run
        var logger = self.logger
        logger[metadataKey: "connector"] = "\(config.name)"
        logger[metadataKey: "run"] = "\(summary.run)"
        logger.info("sync started", metadata: ["full": "\(full)"])
        let writer = RecordWriter(connector: config.name, mapping: config.mapping)
        if let listing = connector as? any PipelineListing {
            // Pipelines first: a stage nobody mapped is reported even before a deal enters it.
            let unmapped = try await PipelineStageStore().replace(
                connector: config.name, stages: try await listing.pipelineStages(), mapping: config.mapping, client: client, logger: logger)
            summary.unmappedStages.formUnion(unmapped.map(\.stage))
        }
        var lastProgress = ContinuousClock.now
        // With `full`, ids the CRM returned per table: several streams can fill one table
        // (Salesforce Contact and Lead), so vanished rows are swept once all of them were read.
        var seenByTable: [String: Set<String>] = [:]
        for stream in connector.streams {
            let cursor = full ? SyncCursor.start : try await CursorStore.load(connector: config.name, stream: stream.key, client: client, logger: logger)
            let anchor = full ? nil : cursor.anchor(overlap: config.overlap)
            var position = cursor
            var seen: Set<String> = []
            var pager = connector.pager(for: stream, anchor: anchor, cursor: cursor)
            var logger = logger
            logger[metadataKey: "stream"] = "\(stream.key)"
            let recordsBefore = summary.records
            var upcoming = try await pager.next()
            while let page = upcoming {
                // The next page is fetched while this one is written: a pager's position depends only
                // on the CRM's answers, and the cursor still moves one committed page at a time. A
                // failed write cancels the fetch; a failed fetch leaves this page committed.
                let current = pager
                async let fetched = Self.advance(current)
                position = position.advanced(over: page.stamps)
                let outcome = try await writer.commit(page.batch, cursor: (stream.key, position), client: client, logger: logger)
                if full { seen.formUnion(page.ids) }
                summary.pages += 1
                summary.records += page.batch.count
                summary.stageChanges += outcome.stageChanges
                summary.deletions += outcome.deletions
                summary.stale += outcome.stale
                summary.unmappedStages.formUnion(outcome.unmappedStages)
                Counter(label: "crm_sync_records_total", dimensions: [("connector", config.name), ("stream", stream.key)]).increment(by: page.batch.count)
                if ContinuousClock.now - lastProgress > .seconds(2) {
                    lastProgress = ContinuousClock.now
                    let elapsed = (ContinuousClock.now - started).seconds
                    progress("\(config.name) \(stream.key): \(summary.records) records, \(summary.pages) pages, \(Int(Double(summary.records) / max(elapsed, 0.001))) records/s, \(connector.http.stats.retries) retries")
                }
                (upcoming, pager) = try await fetched
            }
            // Deletes have their own channel; a deletion is applied with no cursor change.
            let deletions = try await connector.deletions(for: stream, since: full ? nil : anchor)
            if !deletions.isEmpty {
                var batch = RecordBatch()
                batch.deletions = deletions
                let outcome = try await writer.commit(batch, cursor: nil, client: client, logger: logger)
                summary.deletions += outcome.deletions
            }
            logger.debug("stream read", metadata: [
                "records": "\(summary.records - recordsBefore)", "deletions": "\(deletions.count)"])
            if full, let table = Self.table(for: stream) {
                seenByTable[table, default: []].formUnion(seen)
                try await client.query(
                    "UPDATE crm.sync_cursors SET last_full_sync_at = now() WHERE connector = \(config.name) AND stream = \(stream.key)",
                    logger: logger)
            }
        }
        for (table, seen) in seenByTable.sorted(by: { $0.key < $1.key }) {
            summary.deletions += try await markVanished(table: table, seen: seen)
        }
        // The pages queued the deals they changed (triggers on crm.deals, links and touches): an
        // analyst querying reporting.roi_by_campaign once the sync is done sees its deals counted.
        summary.attributionDeals = try await ReportReader().refreshPendingAttribution(client: client, logger: logger)
        logger.debug("attribution refreshed", metadata: ["deals": "\(summary.attributionDeals)"])
        summary.retries = connector.http.stats.retries
        summary.rateLimited = connector.http.stats.rateLimited
        summary.requests = connector.http.stats.requests
        summary.seconds = (ContinuousClock.now - started).seconds
        return summary
    }

    /// One step of a pager, handed back advanced, so it can run beside the write of the page before.
    static func advance(_ pager: any ChangePager) async throws -> (ChangePage?, any ChangePager) {
        var pager = pager
        let page = try await pager.next()
        return (page, pager)
    }

    static func table(for stream: SyncStream) -> String? {
        switch stream.objectType {
        case .accounts: "crm.accounts"
        case .contacts: "crm.contacts"
        case .deals: "crm.deals"
        default: nil
        }
    }

    /// After a full read, rows the CRM did not return at all are gone from it: mark them deleted.
    private func markVanished(table: String, seen: Set<String>) async throws -> Int {
        let ids = Array(seen)
        let rows = try await client.query(
            PostgresQuery(unsafeSQL: """
                UPDATE \(table) SET deleted = true, synced_at = now()
                 WHERE connector = $1 AND NOT deleted AND NOT (external_id = ANY($2))
                RETURNING 1
                """, binds: {
                    var binds = PostgresBindings()
                    binds.append(config.name)
                    binds.append(ids)
                    return binds
                }()),
            logger: logger
        ).collect()
        return rows.count
    }

    private func registerConnector() async throws {
        try await ConnectorRegistry().register([config.registryEntry], client: client, logger: logger)
    }
}

/// Builds the connector a config names.
public enum ConnectorFactory {
    public static func make(_ config: ConnectorConfig, http: HTTPClient, logger: Logger, timeout: Duration? = nil) throws -> any CRMConnector {
        let client = CRMHTTPClient(
            connector: config.name, http: http, requestsPerSecond: config.requestsPerSecond,
            searchRequestsPerSecond: config.searchRequestsPerSecond,
            retry: RetryPolicy(maxAttempts: config.maxAttempts),
            authorization: config.kind == .pipedrive ? PipedriveConnector.authorization(token: config.token) : [("Authorization", "Bearer \(config.token)")],
            timeout: timeout ?? config.requestTimeout, logger: logger)
        switch config.kind {
        case .hubspot:
            return HubSpotConnector(name: config.name, baseURL: config.baseURL, http: client, pageSize: config.pageSize,
                                    marginField: config.mapping.grossMarginField)
        case .pipedrive:
            return PipedriveConnector(name: config.name, baseURL: config.baseURL, http: client, pageSize: config.pageSize,
                                      marginField: config.mapping.grossMarginField)
        case .salesforce:
            return SalesforceConnector(name: config.name, instanceURL: config.baseURL, http: client, pageSize: config.pageSize,
                                       marginField: config.mapping.grossMarginField)
        }
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
