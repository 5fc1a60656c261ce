import CRMSyncCore
import Foundation
import Yams

/// A YAML mapping being read, which remembers where it is so every error names file, line and key,
/// and which refuses keys nobody asked for.
struct YAMLMap {
    let file: String
    let path: String
    let node: Node
    private let entries: [(key: String, value: Node, line: Int?)]

    init(file: String, path: String, node: Node) throws(ConfigError) {
        self.file = file
        self.path = path
        self.node = node
        guard case .mapping(let mapping) = node else {
            throw ConfigError(file: file, line: node.mark?.line, key: path, problem: "expected a mapping")
        }
        var entries: [(String, Node, Int?)] = []
        for (key, value) in mapping {
            guard let name = key.string else {
                throw ConfigError(file: file, line: key.mark?.line, key: path, problem: "keys must be strings")
            }
            entries.append((name, value, key.mark?.line))
        }
        self.entries = entries
    }

    static func document(file: String, text: String) throws(ConfigError) -> YAMLMap {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(file: file, key: "", problem: "not valid YAML: \(String(describing: error).split(separator: "\n").first ?? "")")
        }
        guard let root else { throw ConfigError(file: file, key: "", problem: "the file is empty") }
        return try YAMLMap(file: file, path: "", node: root)
    }

    var keys: [String] { entries.map(\.key) }
    var line: Int? { node.mark?.line }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    func error(_ key: String, _ problem: String) -> ConfigError {
        let entry = entries.first { $0.key == key }
        return ConfigError(file: file, line: entry?.line ?? line, key: keyPath(key), problem: problem)
    }

    func rejectUnknown(allowed: Set<String>) throws(ConfigError) {
        for entry in entries where !allowed.contains(entry.key) {
            throw ConfigError(
                file: file, line: entry.line, key: keyPath(entry.key),
                problem: "unknown key (expected one of: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    func value(_ key: String) -> Node? { entries.first { $0.key == key }?.value }

    func string(_ key: String) throws(ConfigError) -> String? {
        guard let node = value(key) else { return nil }
        if case .scalar(let scalar) = node {
            if scalar.string == "~" || scalar.string == "null" { return nil }
            return scalar.string
        }
        throw error(key, "expected a text value")
    }

    func requiredString(_ key: String) throws(ConfigError) -> String {
        guard let value = try string(key), !value.isEmpty else { throw error(key, "is required") }
        return value
    }

    func int(_ key: String) throws(ConfigError) -> Int? {
        guard let text = try string(key) else { return nil }
        guard let value = Int(text) else { throw error(key, "expected a whole number, got '\(text)'") }
        return value
    }

    func decimal(_ key: String) throws(ConfigError) -> Decimal? {
        guard let text = try string(key) else { return nil }
        guard let value = Decimal(string: text, locale: Locale(identifier: "en_US_POSIX")) else {
            throw error(key, "expected a number, got '\(text)'")
        }
        return value
    }

    func duration(_ key: String) throws(ConfigError) -> Duration? {
        guard let text = try string(key) else { return nil }
        guard let value = DurationText.parse(text) else {
            throw error(key, "expected a duration such as 30s, 5m, 24h or 14d, got '\(text)'")
        }
        return value
    }

    func map(_ key: String) throws(ConfigError) -> YAMLMap? {
        guard let node = value(key) else { return nil }
        return try YAMLMap(file: file, path: keyPath(key), node: node)
    }

    func list(_ key: String) throws(ConfigError) -> [(path: String, node: Node)] {
        guard let node = value(key) else { return [] }
        guard case .sequence(let sequence) = node else { throw error(key, "expected a list") }
        return sequence.enumerated().map { ("\(keyPath(key))[\($0.offset)]", $0.element) }
    }

    func stringList(_ key: String) throws(ConfigError) -> [String] {
        var result: [String] = []
        for item in try list(key) {
            guard let text = item.node.string else {
                throw ConfigError(file: file, line: item.node.mark?.line, key: item.path, problem: "expected a text value")
            }
            result.append(text)
        }
        return result
    }

    /// Entries of a mapping whose keys are data (stage ids, pipeline ids), in file order.
    func entriesOf(_ key: String) throws(ConfigError) -> [(key: String, value: Node, line: Int?)] {
        guard let child = try map(key) else { return [] }
        return child.entries
    }
}

