/// How one CRM's pipelines and stages map onto the canonical ladder, and which canonical stages
/// belong to sales. Loaded from `Mappings/<crm>.yaml`.
public struct StageMapping: Sendable, Equatable {
    public struct Pipeline: Sendable, Equatable {
        public var id: String
        public var label: String?
        /// CRM stage id (or name, for CRMs without ids) → canonical stage.
        public var stages: [String: CanonicalStage]

        public init(id: String, label: String? = nil, stages: [String: CanonicalStage]) {
            self.id = id
            self.label = label
            self.stages = stages
        }
    }

    public var crm: CRMKind
    public var pipelines: [String: Pipeline]
    public var salesOwned: Set<CanonicalStage>
    /// The CRM field holding a per-deal gross margin that overrides the configured default.
    public var grossMarginField: String?
    public var policy: NurturePolicy

    public init(
        crm: CRMKind, pipelines: [String: Pipeline], salesOwned: Set<CanonicalStage>,
        grossMarginField: String? = nil, policy: NurturePolicy = NurturePolicy()
    ) {
        self.crm = crm
        self.pipelines = pipelines
        self.salesOwned = salesOwned
        self.grossMarginField = grossMarginField
        self.policy = policy
    }

    /// The canonical stage of a CRM stage, looked up in its pipeline first, then in any pipeline
    /// (the CRM may not say which pipeline, e.g. a history row). `nil` means unmapped: the caller
    /// stores the raw stage and reports it, it never drops the record.
    public func canonicalStage(pipeline: String?, stage: String?) -> CanonicalStage? {
        guard let stage else { return nil }
        if let pipeline, let mapped = pipelines[pipeline]?.stages[stage] {
            return mapped
        }
        for id in pipelines.keys.sorted() {
            if let mapped = pipelines[id]?.stages[stage] { return mapped }
        }
        return nil
    }

    public func isSalesOwned(_ stage: CanonicalStage?) -> Bool {
        guard let stage else { return false }
        return salesOwned.contains(stage)
    }
}

/// The sales-and-marketing agreement a mapping file carries: when marketing must be quiet, when a
/// prospect counts as stalled, how behaviour is scored and what the hand-off SLA is.
public struct NurturePolicy: Sendable, Equatable {
    public struct ScoringRule: Sendable, Equatable {
        /// An engagement event type, e.g. `email.clicked`, `page.viewed`.
        public var event: String
        /// Optional substring the event's URL (or form/asset) must contain.
        public var matching: String?
        public var points: Int

        public init(event: String, matching: String? = nil, points: Int) {
            self.event = event
            self.matching = matching
            self.points = points
        }
    }

    /// A sales activity this recent (by the owner) silences marketing.
    public var salesActivityWindow: Duration
    public var silencingActivities: Set<ActivityKind>
    /// A silent period longer than this makes the prospect stalled.
    public var maxSilentPeriod: Duration
    /// A qualified prospect with no sales activity for this long is stalled.
    public var stallAfter: Duration
    public var reactivationSequence: String?
    public var scoring: [ScoringRule]
    public var handoffThreshold: Int
    public var slaFirstTouch: Duration
    /// Who gets the task when a hand-off misses its SLA (a CRM owner id, e.g. the sales
    /// manager); nil: the lead's own owner.
    public var slaEscalateTo: String?

    public init(
        salesActivityWindow: Duration = .seconds(14 * 86_400),
        silencingActivities: Set<ActivityKind> = [.call, .meeting, .email],
        maxSilentPeriod: Duration = .seconds(60 * 86_400),
        stallAfter: Duration = .seconds(21 * 86_400),
        reactivationSequence: String? = nil,
        scoring: [ScoringRule] = [],
        handoffThreshold: Int = 50,
        slaFirstTouch: Duration = .seconds(24 * 3_600),
        slaEscalateTo: String? = nil
    ) {
        self.salesActivityWindow = salesActivityWindow
        self.silencingActivities = silencingActivities
        self.maxSilentPeriod = maxSilentPeriod
        self.stallAfter = stallAfter
        self.reactivationSequence = reactivationSequence
        self.scoring = scoring
        self.handoffThreshold = handoffThreshold
        self.slaFirstTouch = slaFirstTouch
        self.slaEscalateTo = slaEscalateTo
    }
}
