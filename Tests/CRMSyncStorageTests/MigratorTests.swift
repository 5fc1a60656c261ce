import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import Logging
import PostgresNIO
import Testing

@Suite struct MigratorTests {
    @Test func migratingTwiceAppliesNothingTheSecondTime() async throws {
        try await TestDatabase.with(migrate: false) { client, _ in
            let migrator = Migrator(directory: TestDatabase.sqlDirectory)
            let first = try await migrator.migrate(client: client, logger: TestDatabase.logger)
            #expect(first.count == (try migrator.migrations().count))
            let second = try await migrator.migrate(client: client, logger: TestDatabase.logger)
            #expect(second.isEmpty)
            #expect(try await migrator.pending(client: client, logger: TestDatabase.logger).isEmpty)
            let views = try await client.query(
                "SELECT count(*)::int8 FROM information_schema.views WHERE table_schema = 'reporting'", logger: TestDatabase.logger
            ).collect().first!.decode(Int64.self)
            #expect(views >= 10)
        }
    }

    @Test func twoMigratorsAtOnceBothSucceed() async throws {
        try await TestDatabase.with(migrate: false) { _, url in
            let migrator = Migrator(directory: TestDatabase.sqlDirectory)
            let total = try migrator.migrations().count
            // Two clients: two sessions racing for the advisory lock.
            let applied = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<2 {
                    group.addTask {
                        try await withPostgresClient(url: url, maxConnections: 1, logger: TestDatabase.logger) { client in
                            try await migrator.migrate(client: client, logger: TestDatabase.logger).count
                        }
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            #expect(applied.sorted() == [0, total])
        }
    }

    @Test func aChangedMigrationIsRefused() async throws {
        try await TestDatabase.with { client, _ in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent(UUID().uuidString).path
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            for file in try FileManager.default.contentsOfDirectory(atPath: TestDatabase.sqlDirectory) {
                try FileManager.default.copyItem(atPath: "\(TestDatabase.sqlDirectory)/\(file)", toPath: "\(folder)/\(file)")
            }
            let first = try FileManager.default.contentsOfDirectory(atPath: folder).sorted().first!
            try ("-- edited\n" + String(contentsOfFile: "\(folder)/\(first)", encoding: .utf8)).write(toFile: "\(folder)/\(first)", atomically: true, encoding: .utf8)
            await #expect(throws: DatabaseError.self) {
                try await Migrator(directory: folder).migrate(client: client, logger: TestDatabase.logger)
            }
        }
    }

    @Test func theScriptSplitterKeepsFunctionBodiesWhole() {
        let sql = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'a;b');
            CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $fn$ BEGIN PERFORM 1; PERFORM 2; END $fn$;
            /* block; comment */ SELECT $1::int;
            """
        let statements = SQLScript.statements(sql)
        #expect(statements.count == 3)
        #expect(statements[1].hasSuffix("END $fn$"))
        #expect(statements[2].hasSuffix("SELECT $1::int"))
    }
}
