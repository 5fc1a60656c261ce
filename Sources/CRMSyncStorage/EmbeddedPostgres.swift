import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
        let status = try Self.run("/bin/bash", [script, "start", directory])
        guard status == 0,
              let port = (try? String(contentsOfFile: "\(directory)/port", encoding: .utf8))
                .flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) })
        else {
            throw .embeddedClusterFailed("\(script) start \(directory) failed (exit \(status))")
        }
        return "postgres://crm_sync@127.0.0.1:\(port)/crm_sync?sslmode=disable"
    }

    /// Runs the script and waits for it with `posix_spawn` and `waitpid`. The script starts a
    /// server that outlives it, so nothing of ours may leak into it: standard output goes to
    /// /dev/null (a pipe would stay open in the server), and every descriptor above stderr is closed
    /// across the exec. Foundation's `Process` could not be used: it learns of a child's exit from a
    /// descriptor the child inherits, which the server inherited in turn and held open, so
    /// `waitUntilExit` never returned; and a parent that ran `crm-sync` the same way hung likewise.
    static func run(_ executable: String, _ arguments: [String]) throws(DatabaseError) -> Int32 {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = ProcessInfo.processInfo.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        Self.closeOnExecAboveStderr()
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, executable, &actions, nil, argv, envp)
        guard spawned == 0 else {
            throw .embeddedClusterFailed("cannot run \(executable) \(arguments.first ?? ""): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw .embeddedClusterFailed("waiting for \(arguments.first ?? executable): \(String(cString: strerror(errno)))") }
        }
        // WIFEXITED / WEXITSTATUS, which Swift does not import (they are macros).
        return status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Marks every open descriptor above stderr close-on-exec (Linux lists them in /proc/self/fd;
    /// elsewhere this does nothing). Harmless to this process, which passes none of its own on;
    /// `posix_spawn_file_actions_addclosefrom_np` would do it in the child but Swift does not
    /// import it.
    static func closeOnExecAboveStderr() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for fd in names.compactMap({ Int32($0) }) where fd > 2 {
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }
}
