import Foundation
import Logging
import PostgresNIO

/// Why the database could not be used, in words for the person running the command.
public enum DatabaseError: Error, CustomStringConvertible {
    case badURL(String)
    case migrationsNotFound(String)
    case migrationChanged(String)
    case migrationFailed(file: String, reason: String)
    case embeddedClusterFailed(String)
    case query(String)

    public var description: String {
        switch self {
        case .badURL(let why): "DATABASE_URL: \(why)"
        case .migrationsNotFound(let path): "no migrations found in \(path) (set CRM_SYNC_SQL_DIR to the sql/ folder)"
        case .migrationChanged(let file): "\(file) was changed after it was applied; add a new migration instead"
        case .migrationFailed(let file, let reason): "\(file): \(reason)"
        case .embeddedClusterFailed(let why): "embedded PostgreSQL: \(why)"
        case .query(let why): "database: \(why)"
        }
    }

    /// A one-line description of any error PostgresNIO throws, without query text or bind values.
    public static func describe(_ error: any Error) -> String {
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] {
                let detail = psql.serverInfo?[.detail].map { " (\($0))" } ?? ""
                return message + detail
            }
            return "\(psql.code)"
        }
        if let database = error as? DatabaseError { return database.description }
        return String(describing: error)
    }
}

/// Connection settings parsed from a `postgres://user:password@host:port/database?sslmode=...` URL.
public struct DatabaseURL: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var username: String
    public var password: String?
    public var database: String
    public var requireTLS: Bool

    public init(_ text: String) throws(DatabaseError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme,
            scheme == "postgres" || scheme == "postgresql"
        else { throw .badURL("expected postgres://user@host:port/database") }
        guard let host = components.host, !host.isEmpty else { throw .badURL("the URL names no host") }
        self.host = host
        port = components.port ?? 5432
        username = components.user.flatMap { $0.removingPercentEncoding } ?? "postgres"
        password = components.password.flatMap { $0.removingPercentEncoding }
        let path = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        database = path.isEmpty ? username : path
        let mode = components.queryItems?.first { $0.name == "sslmode" }?.value ?? "disable"
        requireTLS = ["require", "verify-ca", "verify-full"].contains(mode)
    }

    /// The URL with the password masked, for logs and messages.
    public var redacted: String {
        "postgres://\(username)\(password == nil ? "" : ":***")@\(host):\(port)/\(database)"
    }

    public func clientConfiguration(maxConnections: Int = 20) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host, port: port, username: username, password: password, database: database,
            tls: requireTLS ? .require(.makeClientConfiguration()) : .disable)
        configuration.options.maximumConnections = maxConnections
        return configuration
    }
}

/// Runs a `PostgresClient` for the duration of `body`; the client's run loop is a child task, so it
/// never outlives the work that needs it.
public func withPostgresClient<T: Sendable>(
    url: DatabaseURL, maxConnections: Int = 20, logger: Logger, _ body: @Sendable (PostgresClient) async throws -> T
) async throws -> T {
    let client = PostgresClient(configuration: url.clientConfiguration(maxConnections: maxConnections), backgroundLogger: logger)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            await client.run()
            return nil
        }
        defer { group.cancelAll() }
        // Let `run()` start before the first lease; leasing earlier works but logs a warning.
        for _ in 0..<8 { await Task.yield() }
        return try await body(client)
    }
}
