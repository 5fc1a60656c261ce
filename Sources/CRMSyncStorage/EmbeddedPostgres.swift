import Foundation

/// The embedded default: a private PostgreSQL cluster under `.crm-sync/`, created and started by
/// `scripts/pg.sh` (the one implementation of cluster handling, shared with the test command).
public struct EmbeddedPostgres: Sendable {
    public var directory: String
    public var script: String

    public init(directory: String = ".crm-sync/postgres", script: String? = nil) {
        self.directory = directory
        self.script = script ?? ResourceLocator.locate("scripts/pg.sh") ?? "scripts/pg.sh"
    }

    /// Starts (or reuses) the cluster and returns its URL.
    public func start() throws(DatabaseError) -> String {
        guard FileManager.default.isExecutableFile(atPath: script) else {
            throw .embeddedClusterFailed("\(script) not found; set DATABASE_URL or run from the crm-sync folder")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, "start", directory]
        // No pipe: the server the script starts would inherit it and the read would never end.
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.standardError
        do {
            try process.run()
        } catch {
            throw .embeddedClusterFailed("cannot run \(script): \(error)")
        }
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let port = (try? String(contentsOfFile: "\(directory)/port", encoding: .utf8))
                .flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        else {
            throw .embeddedClusterFailed("\(script) start \(directory) failed (exit \(process.terminationStatus))")
        }
        return "postgres://crm_sync@127.0.0.1:\(port)/crm_sync?sslmode=disable"
    }
}
