import CRMSyncCore
import Foundation

/// The simulator's mutable state: data, rate-limit buckets, fault dice and the request log.
public actor SimulatorState {
    public struct LoggedRequest: Sendable, Equatable {
        public var method: String
        public var path: String
        /// A fingerprint of what was asked (search anchor and `after`, list `after`).
        public var page: String
        public var status: Int
    }

    public internal(set) var data: SimulatedDataset
    public var faults: FaultSpec
    private var rng: SeededRandom
    public private(set) var log: [LoggedRequest] = []
    private let clock: @Sendable () -> Date

    /// Requests per second the simulated account allows (general, search), enforced with the CRM's
    /// own refusal (HubSpot 429, Salesforce 403 `REQUEST_LIMIT_EXCEEDED`).
    public var rateLimit: (general: Double, search: Double)
    private var buckets: [String: (tokens: Double, at: Date)] = [:]
    /// Requests the simulated org allows in a day (Salesforce's API quota); nil is unlimited.
    public var dailyRequestLimit: Int?
    /// Requests counted against the day's quota so far.
    public private(set) var requestsToday = 0

    public init(
        data: SimulatedDataset, faults: FaultSpec = .none, seed: UInt64 = 1,
        rateLimit: (general: Double, search: Double) = (10, 5), clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.data = data
        self.faults = faults
        rng = SeededRandom(seed: seed ^ 0xFA17)
        self.rateLimit = rateLimit
        self.clock = clock
    }

    public func setFaults(_ spec: FaultSpec) { faults = spec }

    /// The "mutate" and "out_of_order" faults, decided on the faults in force *now*, in one actor
    /// step. A handler that read the faults earlier and was then suspended (a slow machine, a
    /// request the client already gave up on) must not edit a deal after the faults were switched
    /// off: that edit would land in the middle of the next, supposedly clean, sync.
    public func editDealsIfFaulted() {
        if rng.chance(faults.mutate) { mutateRandomDeal(backdated: false) }
        if rng.chance(faults.outOfOrder) { mutateRandomDeal(backdated: true) }
    }
    public func setRateLimit(general: Double, search: Double) { rateLimit = (general, search) }
    public func clearLog() { log.removeAll() }
    public func setDailyRequestLimit(_ limit: Int?) { dailyRequestLimit = limit }
    /// A new day: the quota is full again.
    public func startNewDay() { requestsToday = 0 }

    /// Counts an authenticated request against the day's quota; false means refuse it.
    public func spendDailyRequest() -> Bool {
        if let limit = dailyRequestLimit, requestsToday >= limit { return false }
        requestsToday += 1
        return true
    }
    public func record(_ entry: LoggedRequest) { log.append(entry) }
    public func roll(_ p: Double) -> Bool { rng.chance(p) }
    public func randomInt(_ range: Range<Int>) -> Int { Int.random(in: range, using: &rng) }
    public var now: Date { clock() }

    /// Takes a token from the account's bucket; false means answer 429. Buckets hold one second's worth.
    public func admit(search: Bool) -> Bool {
        let key = search ? "search" : "general"
        let rate = search ? rateLimit.search : rateLimit.general
        let now = clock()
        var bucket = buckets[key] ?? (rate, now)
        bucket.tokens = min(rate, bucket.tokens + now.timeIntervalSince(bucket.at) * rate)
        bucket.at = now
        defer { buckets[key] = bucket }
        guard bucket.tokens >= 1 else { return false }
        bucket.tokens -= 1
        return true
    }

    public func records(_ object: String) -> [Int: SimRecord] { data.objects[object] ?? [:] }

    /// Live records of an object ordered by (stamp, id), rebuilt lazily after a change: searches are
    /// a binary search plus a slice instead of a sort of everything per request.
    private var sortedIndex: [String: [IndexEntry]] = [:]

    struct IndexEntry: Sendable {
        var stamp: Int64
        var id: Int
    }

    private func sortedEntries(_ object: String) -> [IndexEntry] {
        if let cached = sortedIndex[object] { return cached }
        var built: [IndexEntry] = []
        for record in (data.objects[object] ?? [:]).values where !record.archived {
            built.append(IndexEntry(stamp: record.updatedAt, id: record.id))
        }
        built.sort { $0.stamp != $1.stamp ? $0.stamp < $1.stamp : $0.id < $1.id }
        sortedIndex[object] = built
        return built
    }

    public struct SearchResult: Sendable {
        public var total: Int
        public var page: [SimRecord]
        /// A couple of records from before this page, for the "repeat" fault.
        public var earlier: [SimRecord]
    }

    /// Live records with `stamp >= from` in stamp order: the total and one slice of them.
    public func searchByStamp(_ object: String, from: Int64?, offset: Int, limit: Int) -> SearchResult {
        let entries = sortedEntries(object)
        var low = 0
        if let from {
            var high = entries.count
            while low < high {
                let mid = (low + high) / 2
                if entries[mid].stamp < from { low = mid + 1 } else { high = mid }
            }
        }
        let records = data.objects[object] ?? [:]
        let start = min(low + offset, entries.count)
        let end = min(start + limit, entries.count)
        var page: [SimRecord] = []
        page.reserveCapacity(end - start)
        for position in start..<end {
            if let record = records[entries[position].id] { page.append(record) }
        }
        var earlier: [SimRecord] = []
        for position in max(0, start - 2)..<start {
            if let record = records[entries[position].id] { earlier.append(record) }
        }
        return SearchResult(total: entries.count - low, page: page, earlier: earlier)
    }
    public func linked(_ key: String, from id: Int) -> [Int] { data.associations[key]?[id] ?? [] }

    /// A change made by a salesperson while a sync runs: new stage (appended to the history), new
    /// amount, new stamp. `backdated` gives it a stamp in the past, as a lagging search index would.
    public func mutateRandomDeal(backdated: Bool) {
        guard let deals = data.objects["deals"], !deals.isEmpty else { return }
        let ids = deals.keys.sorted()
        let id = ids[Int.random(in: 0..<ids.count, using: &rng)]
        guard var deal = deals[id], !deal.archived else { return }
        var stamp = CRMTimestamp.millis(clock())
        if backdated { stamp -= 30_000 }
        stamp = max(stamp, deal.updatedAt + 1)
        let stages = data.pipelineStages
        let next = stages[Int.random(in: 0..<stages.count, using: &rng)]
        if next != deal.properties["dealstage"] {
            deal.properties["dealstage"] = next
            deal.stageHistory.append((next, stamp))
            if next == "closedwon" || next == "closedlost" {
                deal.properties["closedate"] = CRMTimestamp.iso(Date(ms: stamp))
            }
        }
        deal.properties["amount"] = "\(Int.random(in: 10...300, using: &rng) * 10_000)"
        deal.properties["hs_lastmodifieddate"] = CRMTimestamp.iso(Date(ms: stamp))
        deal.updatedAt = stamp
        data.objects["deals"]![id] = deal
        sortedIndex["deals"] = nil
    }

    /// Deletes a record as a salesperson would: HubSpot archives it, Salesforce moves it to the
    /// recycle bin (`deleted/`, `IsDeleted` in queryAll) with its contact roles.
    public func delete(_ object: String, id: Int, at: Date) {
        guard var record = data.objects[object]?[id], !record.archived else { return }
        record.archived = true
        record.archivedAt = CRMTimestamp.millis(at)
        data.objects[object]![id] = record
    }

    /// Creates a record through the API (tasks created by the nurture engine for owners).
    public func create(_ object: String, properties: [String: String], associations: [(String, Int)]) -> SimRecord {
        data.nextID += 1
        let stamp = CRMTimestamp.millis(clock())
        var props = properties
        props["hs_lastmodifieddate"] = CRMTimestamp.iso(Date(ms: stamp))
        props["hs_createdate"] = CRMTimestamp.iso(Date(ms: stamp))
        let record = SimRecord(id: data.nextID, properties: props, createdAt: stamp, updatedAt: stamp)
        data.objects[object, default: [:]][record.id] = record
        sortedIndex[object] = nil
        for (to, id) in associations {
            data.associations["\(object)->\(to)", default: [:]][record.id, default: []].append(id)
        }
        return record
    }
}
