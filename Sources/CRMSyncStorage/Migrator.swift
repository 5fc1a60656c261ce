import Crypto
import Foundation
import Logging
import PostgresNIO

/// Applies `sql/NNN_name.sql` files in order, once each, recorded in `public.crm_sync_migrations`.
///
/// A session-level advisory lock serialises concurrent migrators (two `crm-sync migrate` at once,
/// or several replicas starting together): the second waits, then finds nothing left to apply.
public struct Migrator: Sendable {
    public struct Migration: Sendable, Equatable {
        public var version: Int
        public var name: String
        public var sql: String
        public var checksum: String
    }

    static let lockKey: Int64 = 0x63726d_73796e63  // "crmsync"
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// Finds the `sql/` folder: `CRM_SYNC_SQL_DIR`, then `./sql`, then beside the executable's build folder.
    public static func locateDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let configured = environment["CRM_SYNC_SQL_DIR"] { return configured }
        return ResourceLocator.locate("sql", environment: environment) ?? "sql"
    }

    public func migrations() throws(DatabaseError) -> [Migration] {
        let files: [String]
        do {
            files = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw .migrationsNotFound(directory)
        }
        var result: [Migration] = []
        for file in files.sorted() where file.hasSuffix(".sql") {
            guard let version = Int(file.prefix { $0.isNumber }) else { continue }
            guard let sql = try? String(contentsOfFile: "\(directory)/\(file)", encoding: .utf8) else {
                throw .migrationFailed(file: "\(directory)/\(file)", reason: "cannot read the file")
            }
            let digest = SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
            result.append(Migration(version: version, name: file, sql: sql, checksum: digest))
        }
        guard !result.isEmpty else { throw .migrationsNotFound(directory) }
        let versions = result.map(\.version)
        if Set(versions).count != versions.count {
            throw .migrationFailed(file: directory, reason: "two migrations share a version number")
        }
        return result
    }

    /// Applies what is pending; returns the names applied (empty when already current).
    @discardableResult
    public func migrate(client: PostgresClient, logger: Logger) async throws -> [String] {
        let migrations = try migrations()
        return try await client.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            do {
                let applied = try await apply(migrations, on: connection, logger: logger)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                return applied
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                throw error
            }
        }
    }

    /// The versions not applied yet (for `/readyz`).
    public func pending(client: PostgresClient, logger: Logger) async throws -> [String] {
        let migrations = try migrations()
        let applied = try await appliedVersions(client: client, logger: logger)
        return migrations.filter { applied[$0.version] == nil }.map(\.name)
    }

    private func appliedVersions(client: PostgresClient, logger: Logger) async throws -> [Int: String] {
        let exists = try await client.query(
            "SELECT to_regclass('public.crm_sync_migrations') IS NOT NULL", logger: logger
        ).collect().first?.decode(Bool.self) ?? false
        guard exists else { return [:] }
        var result: [Int: String] = [:]
        for try await (version, checksum) in try await client.query(
            "SELECT version, checksum FROM public.crm_sync_migrations", logger: logger
        ).decode((Int, String).self) {
            result[version] = checksum
        }
        return result
    }

    private func apply(_ migrations: [Migration], on connection: PostgresConnection, logger: Logger) async throws -> [String] {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS public.crm_sync_migrations (
                version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger)
        var applied: [Int: String] = [:]
        for try await (version, checksum) in try await connection.query(
            "SELECT version, checksum FROM public.crm_sync_migrations", logger: logger
        ).decode((Int, String).self) {
            applied[version] = checksum
        }
        var done: [String] = []
        for migration in migrations {
            if let checksum = applied[migration.version] {
                guard checksum == migration.checksum else { throw DatabaseError.migrationChanged(migration.name) }
                continue
            }
            do {
                // One transaction per file: a failing migration leaves nothing half-applied.
                try await connection.withTransaction(logger: logger) { connection in
                    for statement in SQLScript.statements(migration.sql) {
                        try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    try await connection.query(
                        "INSERT INTO public.crm_sync_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))",
                        logger: logger)
                }
            } catch {
                throw DatabaseError.migrationFailed(file: "sql/\(migration.name)", reason: DatabaseError.describe(error))
            }
            logger.info("migration applied", metadata: ["migration": "\(migration.name)"])
            done.append(migration.name)
        }
        return done
    }
}

/// Finds files the project ships beside its sources (`sql/`, `scripts/`, `Mappings/`) whether the
/// binary runs from the repository, from `.build/<config>/`, or from an install prefix.
public enum ResourceLocator {
    public static func locate(_ relative: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        var candidates = [FileManager.default.currentDirectoryPath + "/" + relative]
        if let home = environment["CRM_SYNC_HOME"] { candidates.insert(home + "/" + relative, at: 0) }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        var folder = executable.deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(folder.appendingPathComponent(relative).path)
            candidates.append(folder.appendingPathComponent("share/crm-sync/\(relative)").path)
            folder = folder.deletingLastPathComponent()
        }
        return candidates.first { FileManager.default.fileExists(atPath: $0) }
    }
}
