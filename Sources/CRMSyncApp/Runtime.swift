import CRMSyncConfig
import CRMSyncStorage
import Foundation
import Logging
import PostgresNIO

/// What every command needs: the config, a logger, and the database URL resolved in the contract's
/// order (DATABASE_URL, then `database_url`, then the embedded cluster).
public struct Runtime: Sendable {
    public var config: AppConfig
    public var logger: Logger
    public var environment: [String: String]

    public init(config: AppConfig, logger: Logger, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.config = config
        self.logger = logger
        self.environment = environment
    }

    /// Loads the config file; a missing default file is an empty config (embedded database, no connectors).
    public static func loadConfig(path: String?, environment: [String: String]) throws -> AppConfig {
        let explicit = path ?? environment["CRM_SYNC_CONFIG"]
        let file = explicit ?? "crm-sync.yaml"
        if explicit == nil, !FileManager.default.fileExists(atPath: file) { return AppConfig() }
        return try ConfigLoader.load(path: file, environment: environment)
    }

    public func databaseURL() throws -> DatabaseURL {
        if let url = environment["DATABASE_URL"], !url.isEmpty { return try DatabaseURL(url) }
        if let url = config.databaseURL { return try DatabaseURL(url) }
        let embedded = EmbeddedPostgres(directory: environment["CRM_SYNC_HOME_DIR"].map { "\($0)/postgres" } ?? ".crm-sync/postgres")
        let url = try embedded.start()
        logger.info("using the embedded PostgreSQL cluster", metadata: ["directory": "\(embedded.directory)"])
        return try DatabaseURL(url)
    }

    /// Runs `body` with a connected client; migrations are applied first unless `migrate` is false.
    public func withDatabase<T: Sendable>(migrate: Bool = true, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let url = try databaseURL()
        let logger = self.logger
        return try await withPostgresClient(url: url, logger: logger) { client in
            if migrate {
                try await Migrator(directory: Migrator.locateDirectory(environment: environment)).migrate(client: client, logger: logger)
                // Before any webhook or tick writes a row, so each row gets its connector's workspace.
                try await ConnectorRegistry().register(config.connectors.map(\.registryEntry), client: client, logger: logger)
            }
            return try await body(client)
        }
    }
}

extension ConnectorConfig {
    var registryEntry: ConnectorRegistry.Entry {
        ConnectorRegistry.Entry(name: name, kind: kind.rawValue, baseURL: baseURL, workspace: workspace)
    }
}

extension Runtime: CustomStringConvertible, CustomReflectable {
    /// The configuration, redacted; never the process environment, which holds every secret.
    public var description: String { "Runtime(config: \(config))" }
    public var customMirror: Mirror { Mirror(self, children: ["config": config], displayStyle: .struct) }
}
