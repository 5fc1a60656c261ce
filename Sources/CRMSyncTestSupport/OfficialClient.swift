import Foundation

/// Runs one of `scripts/fidelity/*.py` with the Python that has the CRMs' official client
/// libraries (`CRM_SYNC_PYTHON`, a venv the test command builds from
/// `scripts/fidelity/requirements.txt`). Without it the test fails: the fidelity checks are the
/// only proof that the simulator and the receiver speak the real formats.
public enum OfficialClient {
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public struct Output: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String

        /// The script's JSON summary (its last stdout line).
        public func json() throws -> [String: Any] {
            guard let line = stdout.split(separator: "\n").last,
                  let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            else { throw Failure(description: "the script printed no JSON summary; stderr: \(stderr.suffix(2_000))") }
            return object
        }
    }

    public static func python() throws -> String {
        guard let python = ProcessInfo.processInfo.environment["CRM_SYNC_PYTHON"], !python.isEmpty else {
            throw Failure(description: "CRM_SYNC_PYTHON is not set: run the tests with scripts/test.sh, which builds a venv with the official clients")
        }
        return python
    }

    /// Runs the script to completion off the cooperative pool (the simulator it talks to runs on it).
    public static func run(_ script: String, _ arguments: [String]) async throws -> Output {
        let python = try python()
        let path = TestDatabase.packageRoot + "/scripts/fidelity/" + script
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: python)
                process.arguments = [path] + arguments
                let out = Pipe(), err = Pipe()
                process.standardOutput = out
                process.standardError = err
                do {
                    try process.run()
                    // Read both pipes to the end before waiting, so a chatty script cannot block on a full pipe.
                    let group = DispatchGroup()
                    nonisolated(unsafe) var errData = Data()
                    group.enter()
                    DispatchQueue.global().async {
                        errData = err.fileHandleForReading.readDataToEndOfFile()
                        group.leave()
                    }
                    let outData = out.fileHandleForReading.readDataToEndOfFile()
                    group.wait()
                    process.waitUntilExit()
                    continuation.resume(returning: Output(
                        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                        stderr: String(decoding: errData, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: Failure(description: "could not start \(python) \(path): \(error)"))
                }
            }
        }
    }
}
