import CRMSyncCore
import Foundation

/// One configured CRM connection.
public struct ConnectorConfig: Sendable {
    public var name: String
    public var kind: CRMKind
    public var baseURL: String
    /// Resolved from `token_env`; never logged.
    public var token: String
    public var mappingPath: String
    public var mapping: StageMapping
    public var pollInterval: Duration
    /// Resolved from `webhook_secret_env` (HubSpot client secret, Pipedrive `user:password`).
    public var webhookSecret: String?
    /// Salesforce outbound messages must come from this organisation.
    public var organizationID: String?
    /// How far before the committed cursor each incremental run re-reads.
    public var overlap: Duration
    public var requestsPerSecond: Double
    public var searchRequestsPerSecond: Double
    public var pageSize: Int
    public var maxAttempts: Int
    /// Deadline of one HTTP request, connecting included.
    public var requestTimeout: Duration = .seconds(30)
    /// The business unit this connector's data belongs to; every row it writes carries it.
    public var workspace: String = Workspace.defaultName

    public init(
        name: String, kind: CRMKind, baseURL: String, token: String, mappingPath: String, mapping: StageMapping,
        pollInterval: Duration = .seconds(300), webhookSecret: String? = nil, organizationID: String? = nil,
        overlap: Duration = .seconds(300), requestsPerSecond: Double? = nil, searchRequestsPerSecond: Double? = nil,
        pageSize: Int? = nil, maxAttempts: Int = 6
    ) {
        self.name = name
        self.kind = kind
        self.baseURL = baseURL
        self.token = token
        self.mappingPath = mappingPath
        self.mapping = mapping
        self.pollInterval = pollInterval
        self.webhookSecret = webhookSecret
        self.organizationID = organizationID
        self.overlap = overlap
        self.requestsPerSecond = requestsPerSecond ?? kind.defaultRequestsPerSecond
        self.searchRequestsPerSecond = searchRequestsPerSecond ?? kind.defaultSearchRequestsPerSecond
        self.pageSize = pageSize ?? kind.maxPageSize
        self.maxAttempts = maxAttempts
    }
}

extension CRMKind {
    /// Documented limits, with head-room: HubSpot ~100 requests / 10 s and a few search requests per
    /// second per account; Salesforce is bounded by its daily quota, not a rate; Pipedrive's token
    /// budget allows roughly 10 per second on the smaller plans.
    public var defaultRequestsPerSecond: Double {
        switch self {
        case .hubspot: 9
        case .salesforce: 20
        case .pipedrive: 8
        }
    }

    public var defaultSearchRequestsPerSecond: Double {
        switch self {
        case .hubspot: 4
        case .salesforce, .pipedrive: defaultRequestsPerSecond
        }
    }

    public var maxPageSize: Int {
        switch self {
        case .hubspot: 200
        case .salesforce: 2000
        case .pipedrive: 500
        }
    }
}

public struct EventsConfig: Sendable {
    public var secret: String
    public init(secret: String) { self.secret = secret }
}

public struct OutboundConfig: Sendable {
    public var url: String
    public var secret: String
    public var maxAttempts: Int
    public init(url: String, secret: String, maxAttempts: Int = 8) {
        self.url = url
        self.secret = secret
        self.maxAttempts = maxAttempts
    }
}

public struct AttributionConfig: Sendable, Equatable {
    public var grossMargin: Decimal
    public var lookbackDays: Int
    public var timeDecayHalfLifeDays: Decimal

    public init(grossMargin: Decimal = 0.5, lookbackDays: Int = 90, timeDecayHalfLifeDays: Decimal = 7) {
        self.grossMargin = grossMargin
        self.lookbackDays = lookbackDays
        self.timeDecayHalfLifeDays = timeDecayHalfLifeDays
    }
}

/// The whole `crm-sync.yaml`, validated and with secrets resolved from the environment.
public struct AppConfig: Sendable {
    public var file: String?
    public var databaseURL: String?
    public var connectors: [ConnectorConfig]
    public var events: EventsConfig?
    public var outbound: OutboundConfig?
    public var attribution: AttributionConfig
    public var sequencesPath: String?

    public init(
        file: String? = nil, databaseURL: String? = nil, connectors: [ConnectorConfig] = [], events: EventsConfig? = nil,
        outbound: OutboundConfig? = nil, attribution: AttributionConfig = AttributionConfig(), sequencesPath: String? = nil
    ) {
        self.file = file
        self.databaseURL = databaseURL
        self.connectors = connectors
        self.events = events
        self.outbound = outbound
        self.attribution = attribution
        self.sequencesPath = sequencesPath
    }

    public func connector(named name: String) -> ConnectorConfig? {
        connectors.first { $0.name == name }
    }
}
