import CRMSyncCore
import CRMSyncStorage
import Foundation
import Hummingbird

/// Pipedrive webhooks v2: `{"meta": …, "data": …, "previous": …}`, authenticated only by the
/// HTTP Basic credentials set on the webhook (Pipedrive signs nothing).
enum PipedriveWebhook {
    /// Compares `Authorization: Basic …` with the configured `user:password` in constant time.
    static func authorized(_ header: String?, credentials: String) -> Bool {
        guard let header, header.count > 6, header.prefix(6).lowercased() == "basic ",
              let decoded = Data(base64Encoded: String(header.dropFirst(6)).trimmingCharacters(in: .whitespaces))
        else { return false }
        return constantTimeEquals(Array(decoded), Array(credentials.utf8))
    }

    static func parse(_ body: Data, connector: WebhookConnector) throws(WebhookBodyError) -> InboxEvent {
        let json: Any
        do { json = try StrictJSON.parse(body) } catch { throw WebhookBodyError("body is not JSON: \(error)") }
        guard let root = json as? [String: Any] else { throw WebhookBodyError("body is not a JSON object") }
        guard let meta = root["meta"] as? [String: Any] else { throw WebhookBodyError("missing meta") }
        guard (meta["version"] as? String) == "2.0" else { throw WebhookBodyError("only webhooks v2.0 are accepted") }
        guard let id = try JSONField.identifier(meta["id"], field: "meta.id") else { throw WebhookBodyError("missing meta.id") }
        guard let action = meta["action"] as? String, ["create", "change", "delete"].contains(action) else {
            throw WebhookBodyError("meta.action must be create, change or delete")
        }
        guard let entity = meta["entity"] as? String, InputLimits.fits(entity, 100) else { throw WebhookBodyError("missing meta.entity") }
        guard let occurredAt = JSONField.time(meta["timestamp"]) else { throw WebhookBodyError("meta.timestamp is not an ISO 8601 time") }
        let data = root["data"] as? [String: Any] ?? [:]
        let previous = root["previous"] as? [String: Any] ?? [:]
        let metaEntityID = try JSONField.identifier(meta["entity_id"], field: "meta.entity_id")
        let dataID = try JSONField.identifier(data["id"], field: "data.id")
        guard let entityID = metaEntityID ?? dataID else {
            throw WebhookBodyError("missing meta.entity_id")
        }
        let object = ["deal": "deal", "person": "contact", "organization": "company"][entity]
        let type = "\(entity).\(action)"
        var change: CRMWebhookChange
        var at = occurredAt
        switch (object, action) {
        case (nil, _):
            // Activities, notes, products…: the poll reads what reporting needs.
            change = CRMWebhookChange(object: entity, action: .hint, externalID: entityID, sourceType: type)
        case (let object?, "delete"):
            let dataSurvivor = try JSONField.identifier(data["merged_to_id"], field: "data.merged_to_id")
            let metaSurvivor = try JSONField.identifier(meta["merged_to_id"], field: "meta.merged_to_id")
            if let survivor = dataSurvivor ?? metaSurvivor {
                change = CRMWebhookChange(object: object, action: .merged, externalID: survivor, mergedIDs: [entityID], sourceType: type)
            } else {
                change = CRMWebhookChange(object: object, action: .deleted, externalID: entityID, sourceType: type)
            }
        case ("deal", "change") where previous.keys.contains("stage_id"):
            guard let stage = try JSONField.identifier(data["stage_id"], field: "data.stage_id") else {
                throw WebhookBodyError("stage change without data.stage_id")
            }
            let pipeline = try JSONField.identifier(data["pipeline_id"], field: "data.pipeline_id")
            at = JSONField.time(data["stage_change_time"]) ?? occurredAt
            change = CRMWebhookChange(object: "deal", action: .stageChanged, externalID: entityID, stage: stage, pipeline: pipeline,
                                      canonicalStage: connector.canonical(pipeline: pipeline, stage: stage), sourceType: type)
        case (let object?, _):
            change = CRMWebhookChange(object: object, action: .hint, externalID: entityID, sourceType: type)
        }
        guard let raw = try? JSONSerialization.data(withJSONObject: root), !EngagementEventParser.containsNUL(raw),
              let event = try? change.inboxEvent(deliveryID: id, occurredAt: at, raw: raw)
        else { throw WebhookBodyError("cannot re-encode the event") }
        return event
    }
}

extension WebhookRouter {
    func pipedrive(_ request: Request, connector name: String) async throws -> Response {
        guard let connector = connector(name, kind: .pipedrive) else {
            return reject("pipedrive", "unknown_connector", .notFound, "no Pipedrive connector named \(name)")
        }
        guard let credentials = connector.secret else {
            return reject("pipedrive", "not_configured", .notFound, "connector \(name) has no webhook_secret_env")
        }
        guard let body = await collect(request) else {
            return reject("pipedrive", "too_large", .contentTooLarge, "body over \(settings.maxBodyBytes) bytes")
        }
        guard PipedriveWebhook.authorized(request.headers[.authorization], credentials: credentials) else {
            var response = reject("pipedrive", "credentials", .unauthorized, "HTTP Basic credentials missing or wrong")
            response.headers[.wwwAuthenticate] = "Basic realm=\"crm-sync\""
            return response
        }
        let event: InboxEvent
        do {
            event = try PipedriveWebhook.parse(body, connector: connector)
        } catch {
            return reject("pipedrive", "malformed", .badRequest, error.description)
        }
        if let failure = await commit(endpoint: "pipedrive", source: connector.name, [event]) { return failure }
        return Response(status: .noContent)
    }
}
