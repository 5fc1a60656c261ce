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
    static func text(_ value: Any?) -> String? {
        switch value {
        case let string as String: return string.isEmpty ? nil : string
        case let number as NSNumber:
            // Whole numbers only, digit for digit (a Double would round ids above 2^53).
            let digits = number.stringValue
            guard !digits.isEmpty, digits.count < 20, digits.allSatisfy({ $0.isNumber || $0 == "-" }) else { return nil }
            return digits
        default: return nil
        }
    }

    static func millis(_ value: Any?) -> Date? {
        guard let text = text(value), let millis = Int64(text) else { return nil }
        let date = Date(timeIntervalSince1970: Double(millis) / 1000)
        return EngagementEventParser.plausible(date) ? date : nil
    }

    static func time(_ value: Any?) -> Date? {
        guard let text = value as? String, let date = CRMTimestamp.parse(text) else { return nil }
        return EngagementEventParser.plausible(date) ? date : nil
    }
}
