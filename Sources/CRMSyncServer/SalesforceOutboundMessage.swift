import CRMSyncCore
import CRMSyncStorage
import Foundation
import Hummingbird
#if canImport(FoundationXML)
import FoundationXML
#endif

/// A Salesforce outbound message: a SOAP `notifications` envelope with up to 100
/// `Notification`s, each an sObject with the fields chosen in its setup. Salesforce retries until
/// it gets the SOAP Ack, so the Ack is sent only after the commit.
struct SalesforceOutboundMessage {
    struct Notification {
        var id: String
        var type: String
        var fields: [String: String]
    }

    var organizationID: String
    var notifications: [Notification]

    static let ack = """
        <?xml version="1.0" encoding="UTF-8"?>
        <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
          <soapenv:Body>
            <notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">
              <Ack>true</Ack>
            </notificationsResponse>
          </soapenv:Body>
        </soapenv:Envelope>
        """

    /// A SOAP 1.1 client fault: Salesforce logs the fault string and retries the message.
    static func fault(_ reason: String) -> String {
        let escaped = reason.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
        return """
            <?xml version="1.0" encoding="UTF-8"?>
            <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
              <soapenv:Body>
                <soapenv:Fault>
                  <faultcode>soapenv:Client</faultcode>
                  <faultstring>\(escaped)</faultstring>
                </soapenv:Fault>
              </soapenv:Body>
            </soapenv:Envelope>
            """
    }

    static func parse(_ body: Data) throws(WebhookBodyError) -> SalesforceOutboundMessage {
        // No DTDs: entity expansion is the classic XML denial of service.
        guard body.range(of: Data("<!DOCTYPE".utf8)) == nil, body.range(of: Data("<!ENTITY".utf8)) == nil else {
            throw WebhookBodyError("DTDs are not accepted")
        }
        let reader = Reader()
        let parser = XMLParser(data: body)
        parser.shouldProcessNamespaces = true
        parser.shouldResolveExternalEntities = false
        parser.delegate = reader
        // libxml2 reports success for a document cut off inside an element, so the reader checks
        // that every element it opened was closed and that the root ended the document.
        guard parser.parse(), reader.wellFormed else { throw WebhookBodyError("body is not well-formed XML") }
        guard reader.sawEnvelope else { throw WebhookBodyError("body is not a SOAP notifications envelope") }
        guard let organization = reader.organizationID, !organization.isEmpty else { throw WebhookBodyError("missing OrganizationId") }
        guard !reader.notifications.isEmpty else { throw WebhookBodyError("no Notification in the message") }
        guard reader.notifications.count <= 1000 else { throw WebhookBodyError("more than 1000 notifications") }
        for notification in reader.notifications where notification.id.isEmpty || notification.fields["Id"] == nil {
            throw WebhookBodyError("a Notification lacks its Id or the sObject's Id")
        }
        for notification in reader.notifications {
            for (field, value) in [("Notification Id", notification.id), ("sObject Id", notification.fields["Id"] ?? ""),
                                   ("sObject type", notification.type), ("StageName", notification.fields["StageName"] ?? "")]
            where value.utf8.count > InputLimits.identifierBytes {
                throw WebhookBodyError("\(field) is longer than \(InputLimits.identifierBytes) bytes")
            }
        }
        return SalesforceOutboundMessage(organizationID: organization, notifications: reader.notifications)
    }

    /// Salesforce ids come in a 15-character case-sensitive form and an 18-character form with a
    /// checksum suffix: the first 15 characters identify the organisation.
    static func sameOrganization(_ given: String, _ configured: String) -> Bool {
        constantTimeEquals(Array(given.prefix(15).utf8), Array(configured.prefix(15).utf8))
    }

    func events(connector: WebhookConnector, receivedAt: Date) throws(WebhookBodyError) -> [InboxEvent] {
        try notifications.map { (notification) throws(WebhookBodyError) -> InboxEvent in
            let recordID = notification.fields["Id"]!
            let object = ["Opportunity": "deal", "Contact": "contact", "Lead": "contact", "Account": "company"][notification.type]
            let at = (notification.fields["SystemModstamp"] ?? notification.fields["LastModifiedDate"]).flatMap(CRMTimestamp.parse)
                .flatMap { EngagementEventParser.plausible($0) ? $0 : nil } ?? receivedAt
            let change: CRMWebhookChange
            if let object, notification.fields["IsDeleted"] == "true" {
                change = CRMWebhookChange(object: object, action: .deleted, externalID: recordID, sourceType: notification.type)
            } else if object == "deal", let stage = notification.fields["StageName"], !stage.isEmpty {
                change = CRMWebhookChange(object: "deal", action: .stageChanged, externalID: recordID, stage: stage,
                                          canonicalStage: connector.canonical(pipeline: nil, stage: stage), sourceType: notification.type)
            } else {
                change = CRMWebhookChange(object: object ?? notification.type, action: .hint, externalID: recordID, sourceType: notification.type)
            }
            guard let raw = try? JSONSerialization.data(withJSONObject: ["type": notification.type, "fields": notification.fields]),
                  !EngagementEventParser.containsNUL(raw),
                  let event = try? change.inboxEvent(deliveryID: notification.id, occurredAt: at, raw: raw)
            else { throw WebhookBodyError("cannot re-encode a notification") }
            return event
        }
    }

    /// Collects OrganizationId and each Notification's Id, sObject type and fields.
    final class Reader: NSObject, XMLParserDelegate {
        var sawEnvelope = false
        private var rootClosed = false
        private var failed = false
        /// Every element closed, the root last, and no error reported.
        var wellFormed: Bool { rootClosed && path.isEmpty && !failed }
        var organizationID: String?
        var notifications: [Notification] = []
        private var path: [String] = []
        private var text = ""
        private var current: Notification?

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if rootClosed { failed = true }
            path.append(name)
            text = ""
            if name == "notifications", namespaceURI == "http://soap.sforce.com/2005/09/outbound" { sawEnvelope = true }
            if name == "Notification" { current = Notification(id: "", type: "", fields: [:]) }
            if name == "sObject" {
                let type = attributes["xsi:type"] ?? attributes.first { $0.key.hasSuffix("type") }?.value ?? ""
                current?.type = String(type.split(separator: ":").last ?? "")
            }
        }

        func parser(_ parser: XMLParser, parseErrorOccurred parseError: any Error) { failed = true }

        func parser(_ parser: XMLParser, foundCharacters string: String) {
            if text.count < 100_000 { text += string }
        }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            guard path.last == name else { failed = true; return }
            defer {
                path.removeLast()
                if path.isEmpty { rootClosed = true }
            }
            let parent = path.dropLast().last
            switch (parent, name) {
            case ("notifications", "OrganizationId"): organizationID = text.trimmingCharacters(in: .whitespacesAndNewlines)
            case ("Notification", "Id"): current?.id = text.trimmingCharacters(in: .whitespacesAndNewlines)
            case ("sObject", _): current?.fields[name] = text.trimmingCharacters(in: .whitespacesAndNewlines)
            case (_, "Notification"):
                if let current { notifications.append(current) }
                current = nil
            default: break
            }
        }
    }
}

extension WebhookRouter {
    func salesforce(_ request: Request, connector name: String) async throws -> Response {
        guard let connector = connector(name, kind: .salesforce) else {
            return reject("salesforce", "unknown_connector", .notFound, "no Salesforce connector named \(name)")
        }
        guard let organization = connector.organizationID, !organization.isEmpty else {
            return reject("salesforce", "not_configured", .notFound, "connector \(name) has no organization_id")
        }
        guard let body = await collect(request) else {
            return reject("salesforce", "too_large", .contentTooLarge, "body over \(settings.maxBodyBytes) bytes")
        }
        let events: [InboxEvent]
        do {
            let message = try SalesforceOutboundMessage.parse(body)
            guard SalesforceOutboundMessage.sameOrganization(message.organizationID, organization) else {
                return reject("salesforce", "organization", .unauthorized, "OrganizationId does not match the connector")
            }
            events = try message.events(connector: connector, receivedAt: now())
        } catch {
            var response = reject("salesforce", "malformed", .badRequest, error.description)
            response.headers[.contentType] = "text/xml; charset=utf-8"
            response.body = .init(byteBuffer: ByteBuffer(string: SalesforceOutboundMessage.fault(error.description)))
            return response
        }
        if let failure = await commit(endpoint: "salesforce", source: connector.name, events) { return failure }
        return Response(status: .ok, headers: [.contentType: "text/xml; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: SalesforceOutboundMessage.ack)))
    }
}
