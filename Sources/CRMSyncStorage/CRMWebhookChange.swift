import Foundation

/// What a CRM webhook event means for the mirror, in one shape for every CRM. The receiver
/// derives it from the CRM's own event (kept beside it in the inbox payload as `raw`), and the
/// worker applies it; webhooks are hints that speed up the poll, so only changes that are safe
/// to apply out of band have an effect.
public struct CRMWebhookChange: Codable, Sendable, Equatable {
    public enum Action: String, Codable, Sendable {
        /// The deal entered `stage` at the event's time: one `crm.stage_history` row.
        case stageChanged = "stage_changed"
        case deleted
        /// `mergedIDs` were merged into `externalID`.
        case merged
        /// Anything else the CRM tells us (creation, other properties): the next poll reads it.
        case hint
        /// A type this version does not understand: dead-lettered, replayable after an upgrade.
        case unsupported
    }

    public var object: String
    public var action: Action
    public var externalID: String
    public var stage: String?
    public var pipeline: String?
    public var canonicalStage: String?
    public var mergedIDs: [String]?
    /// The CRM's own event type, for logs and dead-letter reasons.
    public var sourceType: String

    public init(object: String, action: Action, externalID: String, stage: String? = nil, pipeline: String? = nil,
                canonicalStage: String? = nil, mergedIDs: [String]? = nil, sourceType: String) {
        self.object = object
        self.action = action
        self.externalID = externalID
        self.stage = stage
        self.pipeline = pipeline
        self.canonicalStage = canonicalStage
        self.mergedIDs = mergedIDs
        self.sourceType = sourceType
    }

    /// The inbox row for this change: `payload` is `{"change": …, "raw": <the CRM's event>}`.
    public func inboxEvent(deliveryID: String, occurredAt: Date, raw: Data) throws -> InboxEvent {
        let change = String(decoding: try JSONEncoder().encode(self), as: UTF8.self)
        let payload = #"{"change":"# + change + #","raw":"# + String(decoding: raw, as: UTF8.self) + "}"
        return InboxEvent(deliveryID: deliveryID, eventType: "\(object).\(action.rawValue)", occurredAt: occurredAt,
                          recordKey: "\(object):\(externalID)", payload: payload)
    }
}
