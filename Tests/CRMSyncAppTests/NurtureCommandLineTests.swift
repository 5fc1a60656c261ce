import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Testing

/// `crm-sync nurture tick` as a user runs it.
@Suite struct NurtureCommandLineTests {
    let cli = CommandLineTests()

    @Test func tickPrintsOneSummaryLineAndASecondTickAtTheSameInstantDoesNothing() async throws {
        try await TestDatabase.with { client, url in
            let h = try NurtureHarness(client: client)
            try await h.contact("ken")
            try await h.touch("form.submitted", "ken", at: NurtureHarness.at("2026-11-18T00:30:00Z"), campaign: "wp-2026-q4")
            let environment = ["DATABASE_URL": TestDatabase.text(url)]
            let first = try await cli.run(["nurture", "tick", "--now", "2026-11-18T01:00:00Z"], environment: environment)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout == "nurture tick at 2026-11-18T01:00:00.000Z: enrolled 1, sent 1, branched 0, paused 0, resumed 0, exited 0, stalled 0, handed off 0, SLA breaches 0\n")
            let second = try await cli.run(["nurture", "tick", "--now", "2026-11-18T01:00:00Z"], environment: environment)
            #expect(second.stdout.hasSuffix(": enrolled 0, sent 0, branched 0, paused 0, resumed 0, exited 0, stalled 0, handed off 0, SLA breaches 0\n"))
            #expect(try await h.commands("send_step").map(\.contact) == ["hs:ken"])
        }
    }

    /// Issue 12's report as typed: step 1 at Fri 16:23 JST, step 2 due a week later at 16:23 JST;
    /// `--now 2026-09-25T09:30:00Z` (18:30 JST) must print `sent 0`, Monday 09:30 JST `sent 1`.
    @Test func aTickAfterTheWindowClosedSendsNothingAndMondaysDoes() async throws {
        try await TestDatabase.with { client, url in
            let h = try NurtureHarness(client: client)
            try await h.contact("ken")
            try await h.touch("form.submitted", "ken", at: NurtureHarness.at("2026-09-18T07:23:00Z"), campaign: "wp-2026-q4")
            let environment = ["DATABASE_URL": TestDatabase.text(url)]
            func tick(_ now: String) async throws -> String {
                let result = try await cli.run(["nurture", "tick", "--now", now], environment: environment)
                #expect(result.status == 0, "\(result.stderr)")
                return result.stdout
            }
            #expect(try await tick("2026-09-18T07:23:00Z").contains(": enrolled 1, sent 1,"))
            #expect(try await tick("2026-09-25T09:30:00Z").contains(": enrolled 0, sent 0,"))
            #expect(try await tick("2026-09-28T00:30:00Z").contains(": enrolled 0, sent 1,"))
            #expect(try await h.commands("send_step").map { "\($0.step!)@\(NurtureHarness.iso($0.createdAt))" }
                == ["1@2026-09-18T07:23:00Z", "2@2026-09-28T00:30:00Z"])
        }
    }

    @Test func aBadSequenceFileIsOneLineNamingFileAndKey() async throws {
        let sequences = try cli.temporaryFile("bad.yaml", """
            name: bad
            trigger: {event: form.submitted}
            time_zone: Asia/Tokyo
            steps:
              - {step: 1, delay_business_days: 0, subject: a}
            """)
        let directory = URL(fileURLWithPath: sequences).deletingLastPathComponent().path
        let config = try cli.temporaryFile("crm-sync.yaml", "sequences: \(directory)\n")
        let result = try await cli.run(["nurture", "tick", "--config", config],
                                       environment: ["DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"])
        #expect(result.status != 0)
        #expect(result.stderr == "crm-sync: \(sequences):4: steps: expected 3 to 7 steps, got 1\n", "\(result.stderr)")
    }
}
