import CRMSyncApp
import CRMSyncCore
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Testing

/// The nurture engine on a fake clock through the real database, with the shipped sequences and
/// the HubSpot mapping's policy (sales-owned: sql…negotiation; stall after 21 days; hand-off at 50
/// points with a 24-hour SLA).
@Suite struct NurtureScenarioTests {
    typealias H = NurtureHarness
    static let hour: TimeInterval = 3600

    /// Ticks every simulated hour over `[from, to]`, running each tick twice (the second must change
    /// nothing), calling `before` first so the test can write what happens at that hour.
    static func run(_ h: H, from: Date, to: Date, before: (Date) async throws -> Void = { _ in }) async throws {
        var now = from
        while now <= to {
            try await before(now)
            try await h.tick(now)
            let outbox = try await h.outboxCount()
            let second = try await h.tick(now)
            #expect(second == NurtureTick.Summary(), "a second tick at \(H.iso(now)) changed something: \(second)")
            #expect(try await h.outboxCount() == outbox)
            now += hour
        }
        // Never two steps of one enrollment at once.
        let bursts = try await h.client.query(
            """
            SELECT count(*)::int8 FROM (
                SELECT 1 FROM crm.outbox WHERE command_type = 'send_step'
                 GROUP BY payload #>> '{contact,external_id}', payload ->> 'sequence', created_at HAVING count(*) > 1) b
            """, logger: h.logger).collect().first!.decode(Int64.self)
        #expect(bursts == 0)
    }

    /// Must show 1: white paper, steps on business days 0, 2, 5, 8 in the JST window with
    /// 勤労感謝の日 (Mon 2026-11-23) inside; the deal enters `sql` on day 3 → paused; recycled on day
    /// 10 → the next step goes out after its remaining delay, then the last one its delay later.
    @Test func whitePaperPausesInTheSilentPeriodAndResumesWithoutABurst() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("ken")
            let start = H.at("2026-11-18T01:00:00Z")       // Wednesday 10:00 JST
            let day3 = H.at("2026-11-21T03:00:00Z")        // Saturday 12:00 JST
            let day10 = H.at("2026-11-28T03:00:00Z")       // Saturday 12:00 JST
            try await h.touch("form.submitted", "ken", at: start, campaign: "wp-2026-q4")
            var opened: Set<Int> = []
            try await Self.run(h, from: start, to: start + 24 * 24 * Self.hour) { now in
                if now == day3 { try await h.deal("d1", contact: "ken", stage: "appointmentscheduled", canonical: "sql", at: now) }
                if now == day10 { try await h.deal("d1", contact: "ken", stage: "recycled", canonical: "mql", at: now) }
                // Ken opens every mail an hour after it arrives (so the not-opened branch never fires).
                for sent in try await h.commands("send_step", contact: "ken") where sent.createdAt + Self.hour == now && !opened.contains(sent.step!) {
                    opened.insert(sent.step!)
                    try await h.touch("email.opened", "ken", at: now, sequence: sent.sequence, step: sent.step)
                }
                if now == day3 + Self.hour {
                    let e = try await h.enrollments("ken")["whitepaper-followup"]!
                    #expect(e.status == "paused")
                    #expect(e.pausedReason?.contains("sales-owned stage sql") == true)
                }
            }
            let sends = try await h.commands("send_step", contact: "ken")
            #expect(sends.map { "\($0.step!)@\(H.iso($0.createdAt))" } == [
                "1@2026-11-18T01:00:00Z",   // day 0, Wed 10:00 JST: at once
                "2@2026-11-20T01:00:00Z",   // +2 business days: Fri
                // step 3 was due Thu 11-26 10:00 JST (+3 business days, Mon 11-23 a holiday): paused on
                // Sat 11-21 12:00 JST with 4 d 22 h left; resumed Sat 11-28 12:00 JST → Thu 12-03 10:00 JST
                "3@2026-12-03T01:00:00Z",
                "4@2026-12-08T01:00:00Z",   // +3 business days after step 3's send: Fri, Mon, Tue
            ])
            let pauses = try await h.commands("pause", contact: "ken")
            let resumes = try await h.commands("resume", contact: "ken")
            #expect(pauses.map(\.createdAt) == [day3])
            #expect(resumes.map(\.createdAt) == [day10])
            #expect(resumes.first?.payload.contains("\"next_step_due_at\": \"2026-12-03T01:00:00Z\"") == true)
            #expect(try await h.enrollments("ken")["whitepaper-followup"]?.status == "completed")
            // The command body of CONTRACT.md.
            let body = try #require(sends.first?.payload)
            for field in ["\"type\": \"send_step\"", "\"id\": \"cmd_", "\"created_at\": \"2026-11-18T01:00:00Z\"",
                          "\"email\": \"ken@example.co.jp\"", "\"external_id\": \"hs:ken\"", "\"sequence\": \"whitepaper-followup\"",
                          "\"step\": 1", "\"reason\": null"] {
                #expect(body.contains(field), "\(field) in \(body)")
            }
        }
    }

    /// Must show 2: a qualified prospect (deal in `proposal`) without sales activity for 21 days is
    /// flagged, enrolled in the reactivation sequence, and its owner gets a CRM task; a call clears
    /// the flag and silences the reactivation. A hand-off nobody calls within 24 h is an SLA breach.
    @Test func aStalledProspectIsReactivatedAndTheOwnerGetsATask() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("aiko", owner: "owner-7")
            let qualified = H.at("2026-11-02T01:00:00Z")
            try await h.deal("d7", contact: "aiko", stage: "presentationscheduled", canonical: "proposal", at: qualified, owner: "owner-7")
            try await h.tick(qualified)
            try await h.tick(qualified + 20 * 24 * Self.hour)
            #expect(try await h.commands("create_task").isEmpty)

            let stalledAt = H.at("2026-11-24T01:00:00Z")   // 22 days later, Tue 10:00 JST
            let summary = try await h.tick(stalledAt)
            #expect(summary.stalled == 1)
            #expect(try await h.tick(stalledAt) == NurtureTick.Summary())
            let rows = try await client.query(
                "SELECT contact_external_id, owner, canonical_stage, days_since_sales_touch, reactivated_at FROM reporting.stalled_prospects",
                logger: h.logger).collect()
            #expect(rows.count == 1)
            let (contact, owner, stage, days, reactivated) = try rows[0].decode((String, String?, String?, Int?, Date?).self)
            #expect(contact == "aiko" && owner == "owner-7" && stage == "proposal" && days == 22 && reactivated == stalledAt)

            let tasks = try await h.commands("create_task", contact: "aiko")
            #expect(tasks.count == 1)
            #expect(tasks.first?.destination == "hs")
            // Read as the outbox reads it when it creates the task in the CRM.
            let draft = try CRMTaskTarget.draft(from: Data(try #require(tasks.first?.payload).utf8)).get()
            #expect(draft.ownerID == "owner-7" && draft.dealID == "d7" && draft.contactID == "aiko")
            #expect(draft.due == H.at("2026-11-25T01:00:00Z"))
            #expect(draft.subject.hasPrefix("Stalled prospect: no sales activity since 2026-11-02"))
            #expect(try await h.commands("reactivate", contact: "aiko").map(\.destination) == ["ma"])
            // Reactivation runs although the deal is still in a sales-owned stage: step 1 went out at once.
            #expect(try await h.commands("send_step", contact: "aiko").map { "\($0.sequence!) \($0.step!)" } == ["stalled-reactivation 1"])

            // The owner calls: the flag clears and the reactivation falls silent.
            let call = stalledAt + 26 * Self.hour
            try await h.activity("call-1", kind: "call", contact: "aiko", at: call, owner: "owner-7")
            try await h.tick(call + Self.hour)
            #expect(try await h.enrollments("aiko")["stalled-reactivation"]?.status == "paused")
            #expect(try await client.query("SELECT count(*)::int8 FROM reporting.stalled_prospects", logger: h.logger).collect().first!.decode(Int64.self) == 0)
            // The activity window (14 days) runs out: the reactivation resumes where it was.
            try await h.tick(call + 13 * 24 * Self.hour)
            #expect(try await h.enrollments("aiko")["stalled-reactivation"]?.status == "paused")
            try await h.tick(call + 15 * 24 * Self.hour)
            #expect(try await h.enrollments("aiko")["stalled-reactivation"]?.status == "active")
            #expect(try await h.commands("resume", contact: "aiko").count == 1)
        }
    }

    /// A lost deal and a long silence start their sequences; a closed-won deal ends every sequence.
    @Test func stageAndDormancyTriggersEnrolAndAWonDealExits() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("lost")
            try await h.contact("quiet")
            let now = H.at("2026-11-18T01:00:00Z")
            try await h.deal("dl", contact: "lost", stage: "closedlost", canonical: "closed_lost", at: now - 2 * 24 * Self.hour)
            try await h.touch("email.opened", "quiet", at: now - 200 * 24 * Self.hour)
            try await h.tick(now)
            let lost = try #require(try await h.enrollments("lost")["lost-deal-reapproach"])
            // 10 business days after Wed 11-18 10:00 JST, Mon 11-23 a holiday: Thu 12-03 10:00 JST.
            #expect(lost.status == "active" && lost.nextDue == H.at("2026-12-03T01:00:00Z"))
            #expect(try await h.enrollments("quiet")["dormant-reengagement"]?.status == "active")
            #expect(try await h.commands("send_step", contact: "quiet").map(\.step) == [1])
            try await h.deal("dw", contact: "quiet", stage: "closedwon", canonical: "closed_won", at: now + Self.hour)
            #expect(try await h.tick(now + 2 * Self.hour).exited == 1)
            #expect(try await h.enrollments("quiet")["dormant-reengagement"]?.status == "exited")
        }
    }

    @Test func aHandOffWithoutACallInTimeIsAnSLABreach() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            try await h.contact("late", owner: "owner-2")
            try await h.contact("quick", owner: "owner-3")
            let t = H.at("2026-11-16T01:00:00Z")
            for contact in ["late", "quick"] {
                for i in 0..<4 { try await h.touch("form.submitted", contact, at: t - Double(i) * Self.hour, campaign: "contact-us") }
            }
            let summary = try await h.tick(t)          // 4 forms × 15 points = 60 ≥ 50
            #expect(summary.handedOff == 2)
            #expect(Set(try await h.commands("handoff").map(\.contact)) == ["hs:late", "hs:quick"])
            #expect(try await h.commands("create_task").map(\.destination) == ["hs", "hs"])
            try await h.activity("call-q", kind: "call", contact: "quick", at: t + 3 * Self.hour, owner: "owner-3")
            #expect(try await h.tick(t + 23 * Self.hour).breaches == 0)
            #expect(try await h.tick(t + 30 * Self.hour).breaches == 1)
            #expect(try await h.tick(t + 30 * Self.hour) == NurtureTick.Summary())
            // Escalated once: a task due at once for the mapping's escalation owner (none in the
            // shipped HubSpot mapping: the lead's owner), naming what was missed.
            let escalations = try await h.commands("create_task", contact: "late").filter { $0.payload.contains("SLA missed") }
            #expect(escalations.count == 1)
            let task = try #require(escalations.first)
            #expect(task.destination == "hs" && H.iso(task.createdAt) == "2026-11-17T07:00:00Z")
            #expect(task.payload.contains("\"owner\": \"owner-2\"") && task.payload.contains("\"due\": \"2026-11-17T07:00:00Z\""), "\(task.payload)")
            #expect(task.payload.contains("SLA missed: lead (score 60) handed off 2026-11-16 01:00 UTC to owner owner-2 has had no call or meeting"))
            #expect(try await h.commands("create_task", contact: "quick").count == 1, "the hand-off task only")
            let rows = try await client.query(
                "SELECT contact_external_id, owner, first_sales_touch_at, hours_late::text FROM reporting.sla_breaches", logger: h.logger).collect()
            #expect(rows.count == 1)
            let (contact, owner, touch, hours) = try rows[0].decode((String, String?, Date?, String).self)
            #expect(contact == "late" && owner == "owner-2" && touch == nil && Decimal(string: hours) == 6)
        }
    }

    /// With `handoff.escalate_to` in the mapping, the missed SLA's task goes to that owner.
    @Test func aMissedSLAIsEscalatedToTheMappingsEscalationOwner() async throws {
        try await TestDatabase.with { client, _ in
            let h = try H(client: client)
            var definitions = h.definitions
            definitions.policies[0].policy.slaEscalateTo = "manager-9"
            try await h.contact("slow", owner: "owner-2")
            let t = H.at("2026-11-16T01:00:00Z")
            for i in 0..<4 { try await h.touch("form.submitted", "slow", at: t - Double(i) * Self.hour, campaign: "contact-us") }
            let tick = NurtureTick(client: client, logger: h.logger)
            #expect(try await tick.run(definitions: definitions, now: t).handedOff == 1)
            #expect(try await tick.run(definitions: definitions, now: t + 25 * Self.hour).breaches == 1)
            let tasks = try await h.commands("create_task", contact: "slow").map(\.payload)
            #expect(tasks.count == 2, "the hand-off task and the escalation")
            #expect(tasks.contains { $0.contains("SLA missed") && $0.contains("\"owner\": \"manager-9\"") }, "\(tasks)")
        }
    }
}
