import CRMSyncCore
import Foundation
import Logging
import PostgresNIO

/// Reads and writes sync cursors. Saving happens inside the page's transaction (RecordWriter).
public enum CursorStore {
    public static func load(
        connector: String, stream: String, client: PostgresClient, logger: Logger
    ) async throws -> SyncCursor {
        let rows = try await client.query(
            """
            SELECT modified_at, ids_at_modified_at FROM crm.sync_cursors
             WHERE connector = \(connector) AND stream = \(stream)
            """, logger: logger)
        for try await (stamp, ids) in rows.decode((Date?, [String]).self) {
            // timestamptz holds microseconds; CRM stamps are whole milliseconds.
            return SyncCursor(modifiedAt: stamp.map(CRMTimestamp.normalized), idsAtModifiedAt: Set(ids))
        }
        return .start
    }

    static func save(
        connector: String, stream: String, cursor: SyncCursor, on connection: PostgresConnection, logger: Logger
    ) async throws {
        let ids = cursor.idsAtModifiedAt.sorted()
        try await connection.query(
            """
            INSERT INTO crm.sync_cursors (connector, stream, modified_at, ids_at_modified_at, updated_at)
            VALUES (\(connector), \(stream), \(cursor.modifiedAt), \(ids), now())
            ON CONFLICT (connector, stream) DO UPDATE
               SET modified_at = EXCLUDED.modified_at, ids_at_modified_at = EXCLUDED.ids_at_modified_at, updated_at = now()
            """, logger: logger)
    }
}
