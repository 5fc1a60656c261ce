import CRMSyncStorage
import Foundation
import Logging
import PostgresNIO

/// A fresh, migrated database on the PostgreSQL server the test command started
/// (`CRM_SYNC_TEST_DATABASE_URL`). Without that variable the test fails: a missing database is a
/// failure, never a skip.
public enum TestDatabase {
    public struct Missing: Error, CustomStringConvertible {
        public var description: String {
            "CRM_SYNC_TEST_DATABASE_URL is not set: run the tests with scripts/test.sh, which starts PostgreSQL"
        }
    }

    public static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    public static func serverURL() throws -> DatabaseURL {
        guard let text = ProcessInfo.processInfo.environment["CRM_SYNC_TEST_DATABASE_URL"] else { throw Missing() }
        return try DatabaseURL(text)
    }

    public static var sqlDirectory: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("sql").path
    }

    public static var packageRoot: String {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }

    /// Creates a database, optionally migrates it, runs `body`, drops it.
    public static func with<T: Sendable>(
        server: DatabaseURL? = nil, migrate: Bool = true, maxConnections: Int = 10,
        _ body: @Sendable (PostgresClient, DatabaseURL) async throws -> T
    ) async throws -> T {
        let server = try server ?? serverURL()
        let name = "t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(20)
        try await withPostgresClient(url: server, maxConnections: 1, logger: logger) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: logger)
        }
        let url = {
            var url = server
            url.database = String(name)
            return url
        }()
        do {
            let result = try await withPostgresClient(url: url, maxConnections: maxConnections, logger: logger) { client in
                if migrate { try await Migrator(directory: sqlDirectory).migrate(client: client, logger: logger) }
                return try await body(client, url)
            }
            try await drop(name: String(name), server: server)
            return result
        } catch {
            try? await drop(name: String(name), server: server)
            throw error
        }
    }

    static func drop(name: String, server: DatabaseURL) async throws {
        try await withPostgresClient(url: server, maxConnections: 1, logger: logger) { admin in
            try await admin.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(name) WITH (FORCE)"), logger: logger)
        }
    }

    /// The URL as text, for child processes.
    public static func text(_ url: DatabaseURL) -> String {
        "postgres://\(url.username)@\(url.host):\(url.port)/\(url.database)?sslmode=disable"
    }
}
