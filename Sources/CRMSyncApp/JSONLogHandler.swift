import CRMSyncCore
import Foundation
import Logging

/// One JSON object per line on stderr (time, level, label, message, metadata such as connector,
/// stream and run id), for log shippers. `crm-sync` uses it when stderr is not a terminal, or with
/// `--log-format json`; people at a terminal get swift-log's plain lines.
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    let label: String
    let write: @Sendable (String) -> Void

    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil,
                write: @escaping @Sendable (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
        self.label = label
        self.metadataProvider = metadataProvider
        self.write = write
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var fields: [String: Any] = [
            "time": CRMTimestamp.iso(Date()), "level": event.level.rawValue, "label": label, "message": "\(event.message)",
        ]
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        for (key, value) in merged where fields[key] == nil { fields[key] = Self.plain(value) }
        if event.level >= .error { fields["source"] = "\(event.file):\(event.line)" }
        // Keys sorted by hand: JSONSerialization's sortedKeys uses a collator that is not thread-safe here.
        let pairs = fields.keys.sorted().map { key -> String in
            let value = (try? JSONSerialization.data(withJSONObject: [fields[key]!], options: [.fragmentsAllowed, .withoutEscapingSlashes]))
                .map { String(decoding: $0.dropFirst().dropLast(), as: UTF8.self) } ?? "null"
            let name = (try? JSONSerialization.data(withJSONObject: [key])).map { String(decoding: $0.dropFirst().dropLast(), as: UTF8.self) } ?? "\"?\""
            return "\(name):\(value)"
        }
        write("{" + pairs.joined(separator: ",") + "}")
    }

    static func plain(_ value: Logger.Metadata.Value) -> Any {
        switch value {
        case .string(let text): text
        case .stringConvertible(let convertible): "\(convertible)"
        case .array(let values): values.map(plain)
        case .dictionary(let entries): entries.mapValues(plain)
        }
    }
}

/// Chooses the log format once per process: swift-log allows one bootstrap.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json

    /// JSON unless stderr is a terminal.
    public static var automatic: LogFormat { isatty(STDERR_FILENO) == 1 ? .text : .json }

    nonisolated(unsafe) private static var chosen: LogFormat?
    private static let lock = NSLock()

    public static func bootstrap(_ format: LogFormat) {
        lock.lock()
        defer { lock.unlock() }
        guard chosen == nil else { return }
        chosen = format
        switch format {
        case .json: LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
        case .text: LoggingSystem.bootstrap { label in StreamLogHandler.standardError(label: label) }
        }
    }
}
