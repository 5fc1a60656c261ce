import CRMSyncCore
import CRMSyncTestSupport
import Foundation
import Testing

@testable import CRMSimulator

/// The official Python client (simple-salesforce, pinned in scripts/fidelity) against the
/// simulated org: if it pages, reads and fails the way it does against Salesforce, the simulator
/// speaks Salesforce's wire format, not just what our connector expects.
@Suite struct SalesforceFidelityTests {
    struct PythonMissing: Error, CustomStringConvertible {
        var description: String {
            "CRM_SYNC_PYTHON is not set: point it at a Python with simple-salesforce==1.12.10 (scripts/test.sh sets it up)"
        }
    }

    struct Summary: Decodable {
        var opportunities: Int
        var opportunity_pages: Int
        var history: Int
        var deleted: Int
        var task_created: Bool
        var expired_session: String
        var expired_session_error_code: String?
        var problems: [String]
    }

    /// Runs the client script and returns its exit status, stdout and stderr.
    static func run(_ python: String, _ arguments: [String]) async throws -> (status: Int32, out: String, err: String) {
        let result = try await ChildProcess.run(
            python, ["\(TestDatabase.packageRoot)/scripts/fidelity/salesforce_client.py"] + arguments)
        return (result.status, result.stdout, result.stderr)
    }

    static func iso(_ ms: Int64) -> String { CRMTimestamp.iso(Date(ms: ms)) }

    @Test func simpleSalesforcePagesReadsDeletesAndSeesAnExpiredSession() async throws {
        guard let python = ProcessInfo.processInfo.environment["CRM_SYNC_PYTHON"], !python.isEmpty else {
            throw PythonMissing()
        }
        let now = Date()
        let nowMs = CRMTimestamp.millis(now)
        var data = SimulatedDataset.generate(seed: 21, deals: 1_000, now: now)
        for id in [10, 11, 12] {
            data.objects["deals"]![id]!.archived = true
            data.objects["deals"]![id]!.archivedAt = nowMs - 300_000
        }
        let state = SimulatorState(data: data, seed: 21, rateLimit: (5_000, 5_000))
        // What the org holds, as the simulator renders it.
        let org = SalesforceOrg(data: data)
        let opportunities = org.rows("Opportunity").filter { $0["IsDeleted"] != .bool(true) }.count
        let history = org.rows("OpportunityHistory").filter { $0["IsDeleted"] != .bool(true) }.count
        // A whole-minute window, as `deleted/` counts minutes.
        let minute: Int64 = 60_000
        let end = nowMs - nowMs % minute, start = end - 10 * 86_400_000
        let deleted = org.rows("Opportunity").filter { row in row.deletedAt.map { $0 >= start && $0 < end } ?? false }.count
        #expect(deleted >= 3)

        try await SalesforceSyncTests.withSimulator(state) { port in
            let result = try await Self.run(python, [
                "--base-url", "http://127.0.0.1:\(port)", "--token", "sim-token",
                "--deleted-start", Self.iso(start), "--deleted-end", Self.iso(end),
                "--expect-opportunities", "\(opportunities)", "--expect-history", "\(history)", "--expect-deleted", "\(deleted)",
            ])
            #expect(result.status == 0, "salesforce_client.py exited \(result.status): \(result.out) \(result.err.suffix(2_000))")
            let line = try #require(result.out.split(separator: "\n").last, "no summary; stderr: \(result.err.suffix(2_000))")
            let summary = try JSONDecoder().decode(Summary.self, from: Data(line.utf8))
            #expect(summary.problems.isEmpty, "\(summary.problems)")
            #expect(summary.opportunities == opportunities)
            #expect(summary.opportunity_pages == (opportunities + 199) / 200, "the client followed nextRecordsUrl page by page")
            #expect(summary.history == history)
            #expect(summary.deleted == deleted)
            #expect(summary.task_created, "sobjects/Task/ answered simple-salesforce's create")
            #expect(summary.expired_session == "SalesforceExpiredSession")
            #expect(summary.expired_session_error_code == "INVALID_SESSION_ID")
        }
    }
}
