import CRMSyncCore
import Foundation

/// A configured CRM connector as the receiver sees it: who may post to
/// `/webhooks/{kind}/{name}` and how their stages map.
public struct WebhookConnector: Sendable {
    public var name: String
    public var kind: CRMKind
    /// HubSpot: the app's client secret. Pipedrive: `user:password` for HTTP Basic. Never logged.
    public var secret: String?
    /// Salesforce: outbound messages must come from this organisation.
    public var organizationID: String?
    public var mapping: StageMapping?

    public init(name: String, kind: CRMKind, secret: String?, organizationID: String? = nil, mapping: StageMapping? = nil) {
        self.name = name
        self.kind = kind
        self.secret = secret
        self.organizationID = organizationID
        self.mapping = mapping
    }

    func canonical(pipeline: String?, stage: String?) -> String? {
        mapping?.canonicalStage(pipeline: pipeline, stage: stage)?.rawValue
    }
}

/// Why a CRM webhook body was refused: short, and never quoting the body.
struct WebhookBodyError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Reads JSON numbers and strings the way CRMs mix them (HubSpot ids are numbers, Pipedrive's
/// meta ids are strings).
enum JSONField {
    /// A string, or a whole number written digit for digit; `true`, fractions and empty strings
    /// are not ids. Reads `StrictJSON` values, whose Bool never passes for a number.
    static func text(_ value: Any?) -> String? {
        switch value {
        case let string as String: return string.isEmpty ? nil : string
        case is Bool: return nil
        case let number as Int: return String(number)
        default: return nil
        }
    }

    /// An id that fits an index: `nil` when absent, an error naming `field` when too long.
    static func identifier(_ value: Any?, field: String, place: String = "") throws(WebhookBodyError) -> String? {
        guard let text = text(value) else { return nil }
        guard text.utf8.count <= InputLimits.identifierBytes else {
            throw WebhookBodyError("\(place)\(field) is longer than \(InputLimits.identifierBytes) bytes")
        }
        return text
    }

    static func millis(_ value: Any?) -> Date? {
        guard !(value is Bool), let millis = (value as? Int) ?? (value as? String).flatMap({ Int($0) }) else { return nil }
        let date = Date(timeIntervalSince1970: Double(millis) / 1000)
        return EngagementEventParser.plausible(date) ? date : nil
    }

    static func time(_ value: Any?) -> Date? {
        guard let text = value as? String, let date = CRMTimestamp.parse(text) else { return nil }
        return EngagementEventParser.plausible(date) ? date : nil
    }
}
