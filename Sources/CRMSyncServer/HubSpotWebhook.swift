import CRMSyncCore
import CRMSyncStorage
import Foundation
import Hummingbird

/// HubSpot webhooks: a JSON array of subscription events, signed with signature v3.
enum HubSpotWebhook {
    /// The URI forms HubSpot may have signed: it signs the URL it called, which behind a proxy
    /// differs from what we received, so the forwarded host and scheme count too.
    static func candidateURIs(_ request: Request) -> [String] {
        let target = decodeReserved(request.uri.description)
        var hosts: [String] = []
        if let forwarded = request.headers[.init("X-Forwarded-Host")!] { hosts.append(forwarded) }
        if let authority = request.head.authority { hosts.append(authority) }
        if let host = request.headers[.init("Host")!] { hosts.append(host) }
        var schemes = ["https", "http"]
        if let proto = request.headers[.init("X-Forwarded-Proto")!]?.lowercased(), ["http", "https"].contains(proto) {
            schemes = [proto]
        }
        var seen = Set<String>()
        return hosts.flatMap { host in schemes.map { "\($0)://\(host)\(target)" } }.filter { seen.insert($0).inserted }
    }

    /// HubSpot's docs: these escapes are decoded in the URI before signing.
    static func decodeReserved(_ uri: String) -> String {
        let escapes = ["%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'", "%28": "(",
                       "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"]
        var result = uri
        for (escape, character) in escapes {
            result = result.replacingOccurrences(of: escape, with: character)
            result = result.replacingOccurrences(of: escape.lowercased(), with: character)
        }
        return result
    }

    /// One inbox event per subscription event. HubSpot's `eventId` alone is not unique, so the
    /// delivery id is (subscriptionId, eventId, occurredAt).
    static func parse(_ body: Data, connector: WebhookConnector) throws(WebhookBodyError) -> [InboxEvent] {
        let json: Any
        do { json = try StrictJSON.parse(body) } catch { throw WebhookBodyError("body is not JSON: \(error)") }
        let items: [Any] = (json as? [Any]) ?? [json]
        guard !items.isEmpty else { throw WebhookBodyError("no events in the body") }
        guard items.count <= 1000 else { throw WebhookBodyError("more than 1000 events in one request") }
        var events: [InboxEvent] = []
        for (index, item) in items.enumerated() {
            let place = items.count > 1 ? "event \(index): " : ""
            guard let event = item as? [String: Any] else { throw WebhookBodyError("\(place)expected an object") }
            guard let type = event["subscriptionType"] as? String, InputLimits.fits(type, 100) else {
                throw WebhookBodyError("\(place)missing subscriptionType")
            }
            guard let eventID = try JSONField.identifier(event["eventId"], field: "eventId", place: place) else {
                throw WebhookBodyError("\(place)missing eventId")
            }
            guard let occurredAt = JSONField.millis(event["occurredAt"]) else {
                throw WebhookBodyError("\(place)occurredAt is not epoch milliseconds")
            }
            guard let objectID = try JSONField.identifier(event["objectId"], field: "objectId", place: place) else {
                throw WebhookBodyError("\(place)missing objectId")
            }
            let subscription = try JSONField.identifier(event["subscriptionId"], field: "subscriptionId", place: place) ?? "0"
            let change = try self.change(type: type, objectID: objectID, event: event, connector: connector, place: place)
            guard let raw = try? JSONSerialization.data(withJSONObject: event), !EngagementEventParser.containsNUL(raw) else {
                throw WebhookBodyError("\(place)cannot re-encode the event")
            }
            let millis = Int64((occurredAt.timeIntervalSince1970 * 1000).rounded())
            do {
                events.append(try change.inboxEvent(deliveryID: "\(subscription):\(eventID):\(millis)", occurredAt: occurredAt, raw: raw))
            } catch {
                throw WebhookBodyError("\(place)cannot encode the event")
            }
        }
        return events
    }

    static func change(type: String, objectID: String, event: [String: Any], connector: WebhookConnector,
                       place: String = "") throws(WebhookBodyError) -> CRMWebhookChange {
        let parts = type.split(separator: ".", maxSplits: 1).map(String.init)
        let objects = ["deal": "deal", "contact": "contact", "company": "company"]
        guard parts.count == 2, let object = objects[parts[0]] else {
            return CRMWebhookChange(object: "unknown", action: .unsupported, externalID: objectID, sourceType: type)
        }
        switch parts[1] {
        case "propertyChange":
            let property = event["propertyName"] as? String
            if object == "deal", property == "dealstage",
               let stage = try JSONField.identifier(event["propertyValue"], field: "propertyValue", place: place) {
                return CRMWebhookChange(object: object, action: .stageChanged, externalID: objectID, stage: stage,
                                        canonicalStage: connector.canonical(pipeline: nil, stage: stage), sourceType: type)
            }
            return CRMWebhookChange(object: object, action: .hint, externalID: objectID, sourceType: type)
        case "creation", "restore", "associationChange":
            return CRMWebhookChange(object: object, action: .hint, externalID: objectID, sourceType: type)
        case "deletion", "privacyDeletion":
            return CRMWebhookChange(object: object, action: .deleted, externalID: objectID, sourceType: type)
        case "merge":
            let primary = try JSONField.identifier(event["primaryObjectId"], field: "primaryObjectId", place: place)
            let newObject = try JSONField.identifier(event["newObjectId"], field: "newObjectId", place: place)
            let survivor = primary ?? newObject ?? objectID
            var merged: [String] = []
            for id in event["mergedObjectIds"] as? [Any] ?? [] {
                if let id = try JSONField.identifier(id, field: "mergedObjectIds", place: place), id != survivor { merged.append(id) }
            }
            return CRMWebhookChange(object: object, action: .merged, externalID: survivor, mergedIDs: merged, sourceType: type)
        default:
            return CRMWebhookChange(object: object, action: .unsupported, externalID: objectID, sourceType: type)
        }
    }
}

extension WebhookRouter {
    func hubspot(_ request: Request, connector name: String) async throws -> Response {
        guard let connector = connector(name, kind: .hubspot) else {
            return reject("hubspot", "unknown_connector", .notFound, "no HubSpot connector named \(name)")
        }
        guard let secret = connector.secret else {
            return reject("hubspot", "not_configured", .notFound, "connector \(name) has no webhook_secret_env")
        }
        guard let body = await collect(request) else {
            return reject("hubspot", "too_large", .contentTooLarge, "body over \(settings.maxBodyBytes) bytes")
        }
        let signer = HubSpotSignatureV3(clientSecret: secret)
        var failure = SignatureError.mismatch
        var verified = false
        for uri in HubSpotWebhook.candidateURIs(request) where !verified {
            do {
                try signer.verify(method: request.method.rawValue, uri: uri, body: body,
                                  signature: request.headers[.init("X-HubSpot-Signature-v3")!],
                                  timestampMillis: request.headers[.init("X-HubSpot-Request-Timestamp")!], now: now())
                verified = true
            } catch {
                failure = error
                if error != .mismatch { break }
            }
        }
        guard verified else { return reject("hubspot", "signature", .unauthorized, failure.description) }
        let events: [InboxEvent]
        do {
            events = try HubSpotWebhook.parse(body, connector: connector)
        } catch {
            return reject("hubspot", "malformed", .badRequest, error.description)
        }
        if let failure = await commit(endpoint: "hubspot", source: connector.name, events) { return failure }
        return Response(status: .noContent)
    }
}
