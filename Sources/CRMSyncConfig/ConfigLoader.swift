import CRMSyncCore
import Foundation

/// Loads and validates `crm-sync.yaml`. Everything is checked before anything starts: an unknown
/// key, a missing environment variable or a mapping naming an unknown stage is one `ConfigError`.
public enum ConfigLoader {
    public static func load(path: String, environment: [String: String]) throws(ConfigError) -> AppConfig {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ConfigError(file: path, key: "", problem: "config file not found (pass --config FILE or set CRM_SYNC_CONFIG)")
        }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, key: "", problem: "cannot read the config file")
        }
        let base = URL(fileURLWithPath: path).deletingLastPathComponent().path
        return try parse(text: text, file: path, baseDirectory: base, environment: environment)
    }

    public static func parse(
        text: String, file: String, baseDirectory: String, environment: [String: String]
    ) throws(ConfigError) -> AppConfig {
        let root = try YAMLMap.document(file: file, text: text)
        try root.rejectUnknown(allowed: ["database_url", "connectors", "events", "outbound", "attribution", "sequences"])
        var config = AppConfig(file: file)
        config.databaseURL = try root.string("database_url")
        if let url = config.databaseURL, !(url.hasPrefix("postgres://") || url.hasPrefix("postgresql://")) {
            throw root.error("database_url", "expected a postgres:// URL")
        }
        func secret(_ map: YAMLMap, _ key: String, required: Bool) throws(ConfigError) -> String? {
            guard let variable = try map.string(key) else {
                if required { throw map.error(key, "is required") }
                return nil
            }
            guard let value = environment[variable], !value.isEmpty else {
                throw map.error(key, "environment variable \(variable) is not set")
            }
            return value
        }
        func resolve(_ relative: String) -> String {
            if relative.hasPrefix("/") { return relative }
            let beside = URL(fileURLWithPath: baseDirectory).appendingPathComponent(relative).path
            return FileManager.default.fileExists(atPath: beside) ? beside : relative
        }
        var names: Set<String> = []
        for item in try root.list("connectors") {
            let map = try YAMLMap(file: file, path: item.path, node: item.node)
            try map.rejectUnknown(allowed: [
                "name", "kind", "base_url", "token_env", "mapping", "poll_interval", "webhook_secret_env",
                "organization_id", "overlap", "requests_per_second", "search_requests_per_second", "page_size",
                "max_attempts", "request_timeout", "workspace",
            ])
            let name = try map.requiredString("name")
            guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                throw map.error("name", "use letters, digits, '-' and '_' only (it appears in URLs)")
            }
            guard names.insert(name).inserted else { throw map.error("name", "'\(name)' is used by another connector") }
            let kindText = try map.requiredString("kind")
            guard let kind = CRMKind(rawValue: kindText) else {
                throw map.error("kind", "unknown kind '\(kindText)' (expected hubspot, salesforce or pipedrive)")
            }
            let baseURL = try map.requiredString("base_url")
            guard let parsed = URL(string: baseURL), parsed.scheme == "http" || parsed.scheme == "https", parsed.host != nil else {
                throw map.error("base_url", "expected an http(s) URL")
            }
            let mappingPath = resolve(try map.requiredString("mapping"))
            let mapping = try MappingLoader.load(path: mappingPath)
            guard mapping.crm == kind else {
                throw map.error("mapping", "\(mappingPath) is a \(mapping.crm.rawValue) mapping, but the connector is \(kind.rawValue)")
            }
            let token = try secret(map, "token_env", required: true)!
            var connector = ConnectorConfig(
                name: name, kind: kind, baseURL: baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL,
                token: token, mappingPath: mappingPath, mapping: mapping,
                webhookSecret: try secret(map, "webhook_secret_env", required: false),
                organizationID: try map.string("organization_id"))
            if let interval = try map.duration("poll_interval") { connector.pollInterval = interval }
            if let overlap = try map.duration("overlap") { connector.overlap = overlap }
            if let rate = try map.decimal("requests_per_second") {
                guard rate > 0 else { throw map.error("requests_per_second", "must be positive") }
                connector.requestsPerSecond = NSDecimalNumber(decimal: rate).doubleValue
            }
            if let rate = try map.decimal("search_requests_per_second") {
                guard rate > 0 else { throw map.error("search_requests_per_second", "must be positive") }
                connector.searchRequestsPerSecond = NSDecimalNumber(decimal: rate).doubleValue
            }
            if let size = try map.int("page_size") {
                guard (1...kind.maxPageSize).contains(size) else {
                    throw map.error("page_size", "must be between 1 and \(kind.maxPageSize) for \(kind.rawValue)")
                }
                connector.pageSize = size
            }
            if let attempts = try map.int("max_attempts") {
                guard (1...20).contains(attempts) else { throw map.error("max_attempts", "must be between 1 and 20") }
                connector.maxAttempts = attempts
            }
            if let timeout = try map.duration("request_timeout") {
                guard timeout >= .seconds(1) else { throw map.error("request_timeout", "must be at least 1s") }
                connector.requestTimeout = timeout
            }
            if let workspace = try map.string("workspace") {
                guard Workspace.isValidName(workspace) else {
                    throw map.error("workspace", "'\(workspace)' is not a workspace name (\(Workspace.rule))")
                }
                connector.workspace = workspace
            }
            config.connectors.append(connector)
        }
        if let events = try root.map("events") {
            try events.rejectUnknown(allowed: ["secret_env"])
            let value = try secret(events, "secret_env", required: true)!
            guard (try? StandardWebhookSigner(secret: value)) != nil else {
                throw events.error("secret_env", "the secret is not a whsec_ base64 secret")
            }
            config.events = EventsConfig(secret: value)
        }
        if let outbound = try root.map("outbound") {
            try outbound.rejectUnknown(allowed: ["url", "secret_env", "max_attempts"])
            let url = try outbound.requiredString("url")
            guard let parsed = URL(string: url), parsed.scheme == "http" || parsed.scheme == "https" else {
                throw outbound.error("url", "expected an http(s) URL")
            }
            let value = try secret(outbound, "secret_env", required: true)!
            guard (try? StandardWebhookSigner(secret: value)) != nil else {
                throw outbound.error("secret_env", "the secret is not a whsec_ base64 secret")
            }
            config.outbound = OutboundConfig(url: url, secret: value, maxAttempts: try outbound.int("max_attempts") ?? 8)
        }
        if let attribution = try root.map("attribution") {
            try attribution.rejectUnknown(allowed: ["gross_margin", "lookback_days", "time_decay_half_life_days"])
            if let margin = try attribution.decimal("gross_margin") {
                guard margin >= 0, margin <= 1 else { throw attribution.error("gross_margin", "must be between 0 and 1") }
                config.attribution.grossMargin = margin
            }
            if let days = try attribution.int("lookback_days") {
                guard days >= 0 else { throw attribution.error("lookback_days", "must not be negative") }
                config.attribution.lookbackDays = days
            }
            if let halfLife = try attribution.decimal("time_decay_half_life_days") {
                guard halfLife > 0 else { throw attribution.error("time_decay_half_life_days", "must be positive") }
                config.attribution.timeDecayHalfLifeDays = halfLife
            }
        }
        if let sequences = try root.string("sequences") { config.sequencesPath = resolve(sequences) }
        return config
    }
}
