import CRMSyncCore
import Foundation

/// What stands in for a secret wherever a configuration is printed, logged or reflected.
///
/// swift-service-lifecycle logs each service at debug level by interpolating it, and a struct
/// without a description of its own prints every stored property, so each type that holds a
/// secret says here what it shows instead: the secret's presence, never its value. `dump()` and
/// `Mirror` see the same redacted children.
public enum Redacted {
    public static let marker = "<redacted>"

    /// `<redacted>` for a secret that is set, `nil` for one that is not.
    public static func presence(_ secret: String?) -> String { secret == nil ? "nil" : marker }

    /// A connection URL with its password, if any, replaced (`postgres://user:<redacted>@host/db`).
    public static func url(_ text: String) -> String {
        guard var components = URLComponents(string: text), components.password != nil else { return text }
        components.password = marker
        return components.string ?? marker
    }
}

extension ConnectorConfig: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "ConnectorConfig(name: \(name), kind: \(kind.rawValue), baseURL: \(baseURL), token: \(Redacted.marker), "
            + "webhookSecret: \(Redacted.presence(webhookSecret)), organizationID: \(organizationID ?? "nil"), "
            + "workspace: \(workspace), mapping: \(mappingPath), pollInterval: \(pollInterval))"
    }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "name": name, "kind": kind.rawValue, "baseURL": baseURL, "token": Redacted.marker,
            "webhookSecret": Redacted.presence(webhookSecret), "organizationID": organizationID as Any,
            "workspace": workspace, "mappingPath": mappingPath, "pollInterval": pollInterval,
        ], displayStyle: .struct)
    }
}

extension EventsConfig: CustomStringConvertible, CustomReflectable {
    public var description: String { "EventsConfig(secret: \(Redacted.marker))" }
    public var customMirror: Mirror { Mirror(self, children: ["secret": Redacted.marker], displayStyle: .struct) }
}

extension OutboundConfig: CustomStringConvertible, CustomReflectable {
    public var description: String { "OutboundConfig(url: \(Redacted.url(url)), secret: \(Redacted.marker), maxAttempts: \(maxAttempts))" }
    public var customMirror: Mirror {
        Mirror(self, children: ["url": Redacted.url(url), "secret": Redacted.marker, "maxAttempts": maxAttempts], displayStyle: .struct)
    }
}

extension AppConfig: CustomStringConvertible, CustomReflectable {
    public var description: String {
        "AppConfig(file: \(file ?? "nil"), databaseURL: \(databaseURL.map(Redacted.url) ?? "nil"), "
            + "connectors: [\(connectors.map(\.description).joined(separator: ", "))], "
            + "events: \(events.map(\.description) ?? "nil"), outbound: \(outbound.map(\.description) ?? "nil"))"
    }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "file": file as Any, "databaseURL": databaseURL.map(Redacted.url) as Any, "connectors": connectors,
            "events": events as Any, "outbound": outbound as Any, "attribution": attribution, "sequencesPath": sequencesPath as Any,
        ], displayStyle: .struct)
    }
}
