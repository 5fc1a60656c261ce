import CRMSyncConfig
import CRMSyncCore
import CRMSyncStorage
import Foundation
import Logging
import PostgresNIO

/// Wires the nurture engine to the configuration: the sequences of `sequences:` (default
/// `Mappings/sequences/`) and each connector's mapping policy.
public enum NurtureSetup {
    /// Where sequence files are read from when the config names no directory.
    public static let defaultDirectory = "Mappings/sequences"

    public static func definitions(config: AppConfig) throws -> NurtureDefinitions {
        let directory = config.sequencesPath ?? ResourceLocator.locate(defaultDirectory) ?? defaultDirectory
        var sequences: [NurtureSequence] = []
        if config.sequencesPath != nil || FileManager.default.fileExists(atPath: directory) {
            sequences = try SequenceLoader.loadDirectory(directory)
        }
        let names = Set(sequences.map(\.name))
        for connector in config.connectors {
            if let reactivation = connector.mapping.policy.reactivationSequence, !names.contains(reactivation) {
                throw ConfigError(file: connector.mappingPath, key: "policy.reactivation_sequence",
                                  problem: "no sequence named '\(reactivation)' in \(directory)")
            }
        }
        return NurtureDefinitions(sequences: sequences, policies: config.connectors.map {
            ConnectorNurturePolicy(connector: $0.name, salesOwned: $0.mapping.salesOwned, policy: $0.mapping.policy)
        })
    }

    /// One tick at `now` (the caller's clock).
    public static func tick(definitions: NurtureDefinitions, now: Date, client: PostgresClient, logger: Logger) async throws -> NurtureTick.Summary {
        try await NurtureTick(client: client, logger: logger).run(definitions: definitions, now: now)
    }
}
