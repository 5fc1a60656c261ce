import CRMSyncApp
import Foundation
import Logging
import Synchronization
import Testing

/// Logs for machines: one parseable JSON object per line, metadata as fields, quotes and newlines
/// in messages escaped rather than breaking the line.
@Suite struct JSONLogHandlerTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        func append(_ line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
    }

    @Test func eachEventIsOneJSONObjectWithItsMetadata() throws {
        let sink = Lines()
        var logger = Logger(label: "crm-sync") { label in JSONLogHandler(label: label, write: { sink.append($0) }) }
        logger.logLevel = .info
        logger[metadataKey: "run"] = "r-42"
        logger.info("sync finished \"ok\"\nnext line", metadata: ["connector": "hubspot-main", "records": "1200", "path": "/webhooks/events"])
        logger.debug("below the level")
        logger.error("failed")
        let lines = sink.all
        #expect(lines.count == 2)
        #expect(lines.allSatisfy { !$0.contains("\n") })
        let first = try #require(try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any])
        #expect(first["message"] as? String == "sync finished \"ok\"\nnext line")
        #expect(first["level"] as? String == "info")
        #expect(first["connector"] as? String == "hubspot-main")
        #expect(first["run"] as? String == "r-42")
        #expect(first["path"] as? String == "/webhooks/events")
        #expect(first["time"] as? String != nil)
        let second = try #require(try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any])
        #expect(second["level"] as? String == "error")
        #expect((second["source"] as? String)?.contains("JSONLogHandlerTests.swift") == true)
    }
}
