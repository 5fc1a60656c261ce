import CRMSyncCore
import Foundation
import Testing

@Suite struct SyncCursorTests {
    let t0 = Date(timeIntervalSince1970: 1_790_000_000)

    @Test func recordsSharingTheCursorStampAreRememberedNotLost() {
        let cursor = SyncCursor.start.advanced(over: [(id: "1", modifiedAt: t0), (id: "2", modifiedAt: t0)])
        #expect(cursor.modifiedAt == t0)
        #expect(cursor.idsAtModifiedAt == ["1", "2"])
        // A record with the same millisecond that the next page returns is new, not covered.
        #expect(!cursor.covers(id: "3", modifiedAt: t0))
        #expect(cursor.covers(id: "2", modifiedAt: t0))
        let next = cursor.advanced(over: [(id: "3", modifiedAt: t0)])
        #expect(next.idsAtModifiedAt == ["1", "2", "3"])
    }

    @Test func aLaterStampResetsTheTieSetAndAnOlderOneNeverMovesItBack() {
        let cursor = SyncCursor.start.advanced(over: [(id: "1", modifiedAt: t0), (id: "2", modifiedAt: t0.addingTimeInterval(1))])
        #expect(cursor.modifiedAt == t0.addingTimeInterval(1))
        #expect(cursor.idsAtModifiedAt == ["2"])
        let late = cursor.advanced(over: [(id: "9", modifiedAt: t0.addingTimeInterval(-30))])
        #expect(late == cursor)
    }

    @Test func overlapReanchorsEarlier() {
        let cursor = SyncCursor(modifiedAt: t0, idsAtModifiedAt: ["1"])
        #expect(cursor.anchor(overlap: .seconds(300)) == t0.addingTimeInterval(-300))
        #expect(SyncCursor.start.anchor(overlap: .seconds(300)) == nil)
    }
}

@Suite struct ParsingTests {
    @Test func timestampsInEveryCRMShape() {
        let expected = Date(timeIntervalSince1970: 1_793_582_625.678)
        #expect(CRMTimestamp.parse("2026-11-02T01:23:45.678Z") == expected)
        #expect(CRMTimestamp.parse("2026-11-02T01:23:45.678+0000") == expected)
        #expect(CRMTimestamp.parse("2026-11-02T10:23:45.678+09:00") == expected)
        #expect(CRMTimestamp.parse("1793582625678") == expected)
        #expect(CRMTimestamp.parse("2026-11-02 01:23:45") == Date(timeIntervalSince1970: 1_793_582_625))
        #expect(CRMTimestamp.parse("yesterday") == nil)
        #expect(CRMTimestamp.millis(expected) == 1_793_582_625_678)
    }

    @Test func durations() {
        #expect(DurationText.parse("5m") == .seconds(300))
        #expect(DurationText.parse("1h30m") == .seconds(5400))
        #expect(DurationText.parse("14d") == .seconds(14 * 86_400))
        #expect(DurationText.parse("250ms") == .milliseconds(250))
        #expect(DurationText.parse("5 minutes") == nil)
        #expect(DurationText.parse("m") == nil)
    }

    @Test func costCSVRejectsTheWholeFileNamingTheLine() throws {
        let good = "campaign,category,amount,currency,period\nwp,content,100000,jpy,2026-10\nwp,tool,50.5,USD,2026-11\n"
        let lines = try CostCSV.parse(good)
        #expect(lines.count == 2)
        #expect(lines[0].currency == "JPY")
        #expect(lines[1].amount == Decimal(string: "50.5"))
        #expect(throws: CostCSV.ParseError(line: 3, problem: "period '2026-13' is not YYYY-MM")) {
            try CostCSV.parse("campaign,category,amount,currency,period\nwp,content,1,JPY,2026-10\nwp,tool,1,JPY,2026-13\n")
        }
        #expect(throws: CostCSV.ParseError.self) { try CostCSV.parse("campaign,amount\nwp,1\n") }
        #expect(throws: CostCSV.ParseError(line: 2, problem: "amount '-5' is not a non-negative decimal number")) {
            try CostCSV.parse("campaign,category,amount,currency,period\nwp,content,-5,JPY,2026-10\n")
        }
    }

    @Test func stageMappingFallsBackAcrossPipelinesAndReportsUnmapped() {
        let mapping = StageMapping(
            crm: .hubspot,
            pipelines: ["default": .init(id: "default", stages: ["closedwon": .closedWon, "qualifiedtobuy": .discovery])],
            salesOwned: [.discovery])
        #expect(mapping.canonicalStage(pipeline: "default", stage: "closedwon") == .closedWon)
        #expect(mapping.canonicalStage(pipeline: nil, stage: "qualifiedtobuy") == .discovery)
        #expect(mapping.canonicalStage(pipeline: "default", stage: "custom_stage") == nil)
        #expect(mapping.isSalesOwned(.discovery))
        #expect(!mapping.isSalesOwned(.closedWon))
    }
}

@Suite struct TimestampRoundTripTests {
    @Test(arguments: [Int64(1_795_195_375_554), 1_794_774_230_104, 0, 951_782_400_999, 1_709_164_800_001, -86_400_001])
    func isoFormattingKeepsEveryMillisecond(millis: Int64) throws {
        let text = CRMTimestamp.iso(CRMTimestamp.fromMillis(millis))
        let parsed = try #require(CRMTimestamp.parse(text))
        #expect(CRMTimestamp.millis(parsed) == millis, "\(text)")
    }

    @Test func isoFormattingMatchesTheCalendar() {
        #expect(CRMTimestamp.iso(CRMTimestamp.fromMillis(951_782_400_999)) == "2000-02-29T00:00:00.999Z")
        #expect(CRMTimestamp.iso(CRMTimestamp.fromMillis(0)) == "1970-01-01T00:00:00.000Z")
    }
}
