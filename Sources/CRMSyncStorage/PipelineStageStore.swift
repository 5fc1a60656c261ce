import CRMSyncCore
import Foundation
import Logging
import PostgresNIO

/// Replaces a connector's pipeline stages in one transaction, each with its canonical stage.
public struct PipelineStageStore: Sendable {
    public init() {}

    /// Returns the stages the mapping does not name.
    @discardableResult
    public func replace(
        connector: String, stages: [PipelineStage], mapping: StageMapping, client: PostgresClient, logger: Logger
    ) async throws -> [PipelineStage] {
        var unmapped: [PipelineStage] = []
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("DELETE FROM crm.pipeline_stages WHERE connector = \(connector)", logger: logger)
            for stage in stages {
                let canonical = mapping.canonicalStage(pipeline: stage.pipeline, stage: stage.stage)
                if canonical == nil { unmapped.append(stage) }
                try await connection.query(
                    """
                    INSERT INTO crm.pipeline_stages (connector, pipeline, stage, pipeline_label, label, display_order, canonical_stage, sales_owned)
                    VALUES (\(connector), \(stage.pipeline), \(stage.stage), \(stage.pipelineLabel), \(stage.label), \(stage.displayOrder),
                            \(canonical?.rawValue), \(canonical.map { mapping.salesOwned.contains($0) } ?? false))
                    """, logger: logger)
            }
        }
        return unmapped
    }
}
