import Logging
import PostgresNIO

/// Why a connector could not be recorded.
public enum ConnectorRegistryError: Error, CustomStringConvertible, Equatable {
    case workspaceMoved(connector: String, stored: String, configured: String)

    public var description: String {
        switch self {
        case .workspaceMoved(let connector, let stored, let configured):
            "connector '\(connector)' holds data in workspace '\(stored)', but the config puts it in '\(configured)'; "
                + "moving a connector between workspaces is not supported (give the new one another name)"
        }
    }
}

/// Records the configured connectors and their workspaces in `crm.connectors`. Every row a
/// connector writes takes its workspace from there (`crm.stamp_workspace`), so this runs before
/// anything is synced or received.
public struct ConnectorRegistry: Sendable {
    public struct Entry: Sendable, Equatable {
        public var name: String, kind: String, baseURL: String, workspace: String
        public init(name: String, kind: String, baseURL: String, workspace: String) {
            self.name = name
            self.kind = kind
            self.baseURL = baseURL
            self.workspace = workspace
        }
    }

    public init() {}

    public func register(_ entries: [Entry], client: PostgresClient, logger: Logger) async throws {
        guard !entries.isEmpty else { return }
        do {
            try await registerAll(entries, client: client, logger: logger)
        } catch let error as PostgresTransactionError {
            // The caller sees the registry's own one-line error, not the driver's wrapper.
            if let conflict = error.closureError as? ConnectorRegistryError { throw conflict }
            throw error
        }
    }

    private func registerAll(_ entries: [Entry], client: PostgresClient, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            for entry in entries {
                try await connection.query(
                    "INSERT INTO crm.workspaces (name) VALUES (\(entry.workspace)) ON CONFLICT (name) DO NOTHING",
                    logger: logger)
                // A connector keeps its workspace: its rows were stamped with it, and silently
                // re-homing them would hand one business unit's data to another.
                let stored = try await connection.query(
                    """
                    INSERT INTO crm.connectors AS c (name, kind, base_url, workspace)
                    VALUES (\(entry.name), \(entry.kind), \(entry.baseURL), \(entry.workspace))
                    ON CONFLICT (name) DO UPDATE
                       SET kind = EXCLUDED.kind, base_url = EXCLUDED.base_url, updated_at = now(),
                           workspace = CASE WHEN EXISTS (SELECT 1 FROM crm.sync_runs r WHERE r.connector = c.name)
                                              OR EXISTS (SELECT 1 FROM crm.contacts x WHERE x.connector = c.name)
                                              OR EXISTS (SELECT 1 FROM crm.deals x WHERE x.connector = c.name)
                                            THEN c.workspace ELSE EXCLUDED.workspace END
                    RETURNING c.workspace
                    """, logger: logger
                ).collect()
                let workspace = try stored.first?.decode(String.self) ?? entry.workspace
                guard workspace == entry.workspace else {
                    throw ConnectorRegistryError.workspaceMoved(connector: entry.name, stored: workspace, configured: entry.workspace)
                }
            }
        }
    }
}
