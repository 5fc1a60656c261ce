import CRMSyncCore
import CRMSyncServer
import CRMSyncStorage
import CRMSyncTestSupport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import NIOCore
import PostgresNIO
import Testing

/// Pipedrive (HTTP Basic, webhooks v2) and Salesforce (SOAP outbound message, Ack) endpoints.
@Suite struct CRMWebhookEndpointTests {
    func router(_ client: PostgresClient, maxBodyBytes: Int = 1 << 20) -> Router<BasicRequestContext> {
        WebhookRouter(settings: .init(eventsSecret: nil, maxBodyBytes: maxBodyBytes, connectors: Hooks.connectors()), client: client,
                      logger: TestDatabase.logger).router()
    }

    static func pipedrive(id: String, stage: Int, previous: Int?, action: String = "change", extra: String = "") -> String {
        let previousJSON = previous.map { #"{"stage_id": \#($0)}"# } ?? "null"
        return #"{"data": {"id": 213973, "title": "Acme", "pipeline_id": 50, "stage_id": \#(stage), "status": "open", "stage_change_time": "2026-01-14T18:16:56Z"\#(extra)}, "previous": \#(previousJSON), "meta": {"action": "\#(action)", "entity": "deal", "entity_id": "213973", "id": "\#(id)", "timestamp": "2026-01-14T18:16:56.057Z", "type": "general", "version": "2.0", "attempt": 1}}"#
    }

    @Test func pipedriveNeedsItsBasicCredentialsAndStageChangesReachTheHistory() async throws {
        try await TestDatabase.with { client, _ in
            try await Application(router: router(client)).test(.router) { (http: any TestClientProtocol) async throws -> Void in
                func post(_ body: String, credentials: String?, connector: String = "pd") async throws -> HTTPResponse.Status {
                    var headers: HTTPFields = [.contentType: "application/json"]
                    if let credentials { headers[.authorization] = "Basic " + Data(credentials.utf8).base64EncodedString() }
                    return try await http.execute(uri: "/webhooks/pipedrive/\(connector)", method: .post, headers: headers, body: ByteBuffer(string: body)) { $0.status }
                }
                let change = Self.pipedrive(id: "6ba407fc-1", stage: 428, previous: 427)
                #expect(try await post(change, credentials: Hooks.pipedriveCredentials) == .noContent)
                #expect(try await post(change, credentials: Hooks.pipedriveCredentials) == .noContent) // retry, attempt 2
                #expect(try await post(Self.pipedrive(id: "6ba407fc-2", stage: 428, previous: nil, action: "create"), credentials: Hooks.pipedriveCredentials) == .noContent)
                #expect(try await post(change, credentials: "crm-sync:wrong") == .unauthorized)
                #expect(try await post(change, credentials: nil) == .unauthorized)
                #expect(try await post(change, credentials: Hooks.pipedriveCredentials, connector: "hs") == .notFound)
                #expect(try await post(change.replacingOccurrences(of: "\"2.0\"", with: "\"1.0\""), credentials: Hooks.pipedriveCredentials) == .badRequest)
                #expect(try await post("{\"meta\":", credentials: Hooks.pipedriveCredentials) == .badRequest)
            }
            #expect(try await Hooks.count(client) == 2)
            #expect(try await InboxProcessor(client: client, logger: TestDatabase.logger).drain() == .init(applied: 2, deadLettered: 0))
            let history = try await client.query("SELECT connector, deal_external_id, stage, source, entered_at FROM crm.stage_history",
                                                 logger: TestDatabase.logger).collect().map { try $0.decode((String, String, String, String, Date).self) }
            #expect(history.count == 1)
            #expect(history.first.map { [$0.0, $0.1, $0.2, $0.3] } == ["pd", "213973", "428", "webhook"])
            #expect(history.first?.4 == CRMTimestamp.parse("2026-01-14T18:16:56Z"))
        }
    }

    static func soap(organization: String = Hooks.salesforceOrganization, notification: String = "04l7F000008aeAyQAI", stage: String = "Perception Analysis") -> String {
        """
        <?xml version="1.0" encoding="UTF-8"?>
        <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
         <soapenv:Body>
          <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
           <OrganizationId>\(organization)</OrganizationId>
           <ActionId>04k7F0000008V3hQAE</ActionId>
           <SessionId xsi:nil="true"/>
           <EnterpriseUrl>https://ap5.salesforce.com/services/Soap/c/47.0/00D7F00000107Xs</EnterpriseUrl>
           <PartnerUrl>https://ap5.salesforce.com/services/Soap/u/47.0/00D7F00000107Xs</PartnerUrl>
           <Notification>
            <Id>\(notification)</Id>
            <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
             <sf:Id>0067F000003pmdWQAQ</sf:Id>
             <sf:Amount>120000.0</sf:Amount>
             <sf:Name>Express Logistics SLA</sf:Name>
             <sf:StageName>\(stage)</sf:StageName>
             <sf:SystemModstamp>2017-03-01T10:00:00.000Z</sf:SystemModstamp>
            </sObject>
           </Notification>
          </notifications>
         </soapenv:Body>
        </soapenv:Envelope>
        """
    }

    @Test func salesforceOutboundMessagesFromTheConfiguredOrganisationAreAcknowledgedAfterTheCommit() async throws {
        try await TestDatabase.with { client, _ in
            try await Application(router: router(client, maxBodyBytes: 8 * 1024)).test(.router) { (http: any TestClientProtocol) async throws -> Void in
                func post(_ body: String, connector: String = "sf") async throws -> (HTTPResponse.Status, String) {
                    try await http.execute(uri: "/webhooks/salesforce/\(connector)", method: .post,
                                           headers: [.contentType: "text/xml; charset=utf-8", HTTPField.Name("SOAPAction")!: "\"\""],
                                           body: ByteBuffer(string: body)) { ($0.status, String(buffer: $0.body)) }
                }
                let (status, ack) = try await post(Self.soap())
                #expect(status == .ok)
                #expect(ack.contains("<notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">") && ack.contains("<Ack>true</Ack>"))
                #expect(try await post(Self.soap()).0 == .ok) // redelivery of the same notification
                // The 15-character form of the configured 18-character organisation id matches too.
                #expect(try await post(Self.soap(organization: "00D7F00000107Xs", notification: "04l7F000008aeAzQAI", stage: "Closed Won")).0 == .ok)
                #expect(try await post(Self.soap(organization: "00D7F00000999XsUAI", notification: "x1")).0 == .unauthorized)
                #expect(try await post(Self.soap(), connector: "nobody").0 == .notFound)
                let malformed = try await post("<notifications><Notification>")
                #expect(malformed.0 == .badRequest && !malformed.1.contains("Notification>"))
                let entity = #"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>"# + Self.soap()
                #expect(try await post(entity).0 == .badRequest)
                #expect(try await post(Self.soap() + String(repeating: " ", count: 9_000)).0 == .contentTooLarge)
            }
            #expect(try await Hooks.count(client) == 2)
            #expect(try await InboxProcessor(client: client, logger: TestDatabase.logger).drain() == .init(applied: 2, deadLettered: 0))
            let stages = try await client.query("SELECT stage FROM crm.stage_history WHERE source = 'webhook' ORDER BY stage",
                                                logger: TestDatabase.logger).collect().map { try $0.decode(String.self) }
            #expect(stages == ["Closed Won", "Perception Analysis"])
        }
    }
}
