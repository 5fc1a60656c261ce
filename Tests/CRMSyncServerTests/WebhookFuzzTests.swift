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

/// Thousands of random and mutated requests to every webhook endpoint, from a seeded generator:
/// no crash, no 5xx, and no inbox row that did not come with valid credentials.
@Suite struct WebhookFuzzTests {
    static let seeds: [UInt64] = [1, 2, 3]
    static let requestsPerSeed = 1_200

    static let hubspotBody = #"[{"eventId": 1, "subscriptionId": 25, "portalId": 33, "occurredAt": 1780000000123, "subscriptionType": "deal.propertyChange", "objectId": 1246965, "propertyName": "dealstage", "propertyValue": "closedwon"}]"#
    static let pipedriveBody = #"{"data": {"id": 213973, "pipeline_id": 50, "stage_id": 428, "stage_change_time": "2026-01-14T18:16:56Z"}, "previous": {"stage_id": 427}, "meta": {"action": "change", "entity": "deal", "entity_id": "213973", "id": "6ba407fc-006d-4556-9804-8298e584a288", "timestamp": "2026-01-14T18:16:56.057Z", "version": "2.0"}}"#
    static let salesforceBody = """
        <?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D7F00000107XsUAI</OrganizationId><ActionId>04k7F0000008V3hQAE</ActionId><Notification><Id>04l7F000008aeAyQAI</Id><sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>0067F000003pmdWQAQ</sf:Id><sf:StageName>Perception Analysis</sf:StageName><sf:SystemModstamp>2017-03-01T10:00:00.000Z</sf:SystemModstamp></sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>
        """

    enum Endpoint: CaseIterable { case events, hubspot, pipedrive, salesforce }

    /// A mutation of a valid body: flipped bytes, cut, spliced junk, deep nesting, odd values.
    static func mutate(_ body: String, _ random: inout Hooks.Random) -> String {
        var bytes = Array(body.utf8)
        switch random.next() % 10 {
        case 0: // flip some bytes
            for _ in 0..<(1 + Int(random.next() % 4)) where !bytes.isEmpty {
                bytes[Int(random.next() % UInt64(bytes.count))] ^= UInt8(truncatingIfNeeded: random.next() | 1)
            }
        case 1: bytes = Array(bytes.prefix(Int(random.next() % UInt64(bytes.count + 1))))
        case 2: // random bytes
            bytes = (0..<Int(random.next() % 300)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        case 3: // splice a hostile value in place of a string
            let values = [#""\u0000""#, "1e999", "-1", "null", "[]", "{}", "true", "-9223372036854775808", "9223372036854775807",
                          #""\#(String(repeating: "e\u{301}\u{301}\u{301}", count: 200))""#, #""\ud800""#, "99999999999999999999999",
                          #""9999-12-31T23:59:59Z""#, #""0000-01-01T00:00:00Z""#, String(repeating: "[", count: 5_000)]
            let text = String(decoding: bytes, as: UTF8.self)
            let pieces = text.components(separatedBy: "\"")
            if pieces.count > 3 {
                let index = 1 + Int(random.next() % UInt64(pieces.count - 2))
                var copy = pieces
                copy[index] = values[Int(random.next() % UInt64(values.count))]
                return copy.joined(separator: "\"")
            }
        case 4: bytes = Array(String(repeating: "[", count: Int(random.next() % 100_000)).utf8)
        case 5: bytes.insert(contentsOf: Array(#"<!DOCTYPE x [<!ENTITY a "aaaa">]>"#.utf8), at: 0)
        case 6: bytes = Array("[\(body),\(body)]".utf8)
        case 7: bytes = Array(body.replacingOccurrences(of: "2026", with: String(random.next() % 20_000)).utf8)
        case 8: bytes = Array(body.replacingOccurrences(of: "}", with: ",}").replacingOccurrences(of: "]", with: ",]").utf8)
        default: break
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test(.timeLimit(.minutes(15)))
    func randomAndMutatedRequestsNeverCrashNever5xxAndWriteOnlyAuthenticEvents() async throws {
        try await TestDatabase.with { client, _ in
            let router = WebhookRouter(settings: .init(eventsSecret: Hooks.eventsSecret, maxBodyBytes: 64 * 1024, connectors: Hooks.connectors()),
                                       client: client, logger: TestDatabase.logger).router()
            let (authentic, statuses) = try await Application(router: router).test(.router) { http in
                var authentic = 0
                var stored: Int64 = 0
                var statuses: [UInt16: Int] = [:]
                for seed in Self.seeds {
                    var random = Hooks.Random(state: seed)
                    for n in 0..<Self.requestsPerSeed {
                        let endpoint = Endpoint.allCases[Int(random.next() % 4)]
                        var validCredentials = random.next() % 3 != 0
                        let mutated = random.next() % 4 != 0
                        var headers: HTTPFields = [.contentType: "application/json"]
                        let path: String
                        var body: String
                        switch endpoint {
                        case .events:
                            path = "/webhooks/events"
                            body = mutated ? Self.mutate(Hooks.event("fz_\(seed)_\(n)"), &random) : Hooks.event("fz_\(seed)_\(n)")
                            if validCredentials {
                                headers = Hooks.signed(id: "m\(n)", body: body)
                            } else {
                                let options = [
                                    Hooks.signed(id: "m\(n)", body: body + " "),
                                    Hooks.signed(id: "m\(n)", body: body, secret: "whsec_" + Data(repeating: 9, count: 24).base64EncodedString()),
                                    Hooks.signed(id: "m\(n)", body: body, at: Date().addingTimeInterval(-400)),
                                    Hooks.standardHeaders(id: "m\(n)", timestamp: Int64(random.next() % 3_000_000_000), signature: "v1,\(random.next())"),
                                    [HTTPField.Name("webhook-id")!: "m\(n)", HTTPField.Name("webhook-signature")!: "v1"],
                                    Hooks.standardHeaders(id: "m\(n)", timestamp: .min, signature: "v1,x"),
                                ]
                                headers = options[Int(random.next() % UInt64(options.count))]
                            }
                        case .hubspot:
                            path = random.next() % 10 == 0 ? "/webhooks/hubspot/nope" : "/webhooks/hubspot/hs"
                            body = mutated ? Self.mutate(Self.hubspotBody, &random) : Self.hubspotBody
                            let stale = random.next() % 8 == 0
                            headers = Hooks.hubspotHeaders(uri: path, body: validCredentials ? body : body + "x",
                                                           at: stale ? Date().addingTimeInterval(-301) : Date())
                            if stale { validCredentials = false }
                            if random.next() % 12 == 0 {
                                // Timestamps at the ends of Int64 (one crashed the receiver, unauthenticated).
                                headers[HTTPField.Name("X-HubSpot-Request-Timestamp")!] = ["-9223372036854775808", "9223372036854775807"][Int(random.next() % 2)]
                                validCredentials = false
                            }
                        case .pipedrive:
                            path = "/webhooks/pipedrive/pd"
                            body = mutated ? Self.mutate(Self.pipedriveBody, &random) : Self.pipedriveBody
                            let credentials = validCredentials ? Hooks.pipedriveCredentials : ["crm-sync:wrong", "", "crm-sync:pipedrive-pas"][Int(random.next() % 3)]
                            headers[.authorization] = random.next() % 10 == 0 ? "Basic !!notbase64" : "Basic " + Data(credentials.utf8).base64EncodedString()
                        case .salesforce:
                            path = "/webhooks/salesforce/sf"
                            body = mutated ? Self.mutate(Self.salesforceBody, &random) : Self.salesforceBody
                            if !validCredentials { body = body.replacingOccurrences(of: "00D7F00000107Xs", with: "00D7F00000999Xs") }
                            headers[.contentType] = "text/xml; charset=utf-8"
                        }
                        let status = try await http.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body)) { $0.status }
                        statuses[UInt16(status.code), default: 0] += 1
                        #expect(status.code < 500, "seed \(seed) request \(n) \(endpoint): \(status.code)")
                        if status.code < 300 { authentic += 1 }
                        // Only requests with valid credentials may be accepted, or write anything.
                        if status.code < 300 { #expect(validCredentials, "seed \(seed) request \(n) \(endpoint) accepted without valid credentials") }
                        let rows = try await Hooks.count(client)
                        if !validCredentials { #expect(rows == stored, "seed \(seed) request \(n) \(endpoint) wrote without valid credentials") }
                        stored = rows
                    }
                }
                try await http.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
                return (authentic, statuses)
            }
            #expect(authentic > 100, "too few requests were valid to exercise the write path: \(statuses)")
            #expect(statuses.keys.contains(400) && statuses.keys.contains(401) && statuses.keys.contains(413))
            // Every stored row comes from a body that carried valid credentials: events and HubSpot
            // bodies with a bad signature differ from every signed body, so none may have been stored.
            let rows = try await client.query("SELECT source, delivery_id FROM crm.inbox", logger: TestDatabase.logger).collect()
                .map { try $0.decode((String, String).self) }
            #expect(rows.allSatisfy { ["events", "hs", "pd", "sf"].contains($0.0) })
            // Whatever was accepted can be applied or dead-lettered without failing the worker.
            let outcome = try await InboxProcessor(client: client, logger: TestDatabase.logger).drain()
            #expect(outcome.applied + outcome.deadLettered == rows.count)
        }
    }

    /// The inputs that broke the receiver when it was tried as a new user would (issue 12 part 0):
    /// each gets the 4xx it deserves with a line naming what is wrong, stores nothing, and the
    /// receiver keeps serving. Before the fixes these crashed it (overflow traps), or answered 503
    /// so that senders would retry them for days.
    @Test func theInputsFoundInUseGetA4xxNamingTheProblem() async throws {
        // 200 visible characters, 56 KB: combining marks make a short-looking id long in bytes.
        let heavy = String(repeating: "a" + String(repeating: "\u{301}", count: 140), count: 200)
        let longEmail = String(repeating: "k", count: 330) + "@example.co.jp"
        func event(_ replacing: String, with value: String) -> String {
            Hooks.event("hostile").replacingOccurrences(of: replacing, with: value)
        }
        func hubspot(_ body: String) -> (String, HTTPFields, String) { ("/webhooks/hubspot/hs", Hooks.hubspotHeaders(uri: "/webhooks/hubspot/hs", body: body), body) }
        func pipedrive(_ body: String) -> (String, HTTPFields, String) {
            ("/webhooks/pipedrive/pd", [.contentType: "application/json", .authorization: "Basic " + Data(Hooks.pipedriveCredentials.utf8).base64EncodedString()], body)
        }
        func salesforce(_ body: String) -> (String, HTTPFields, String) { ("/webhooks/salesforce/sf", [.contentType: "text/xml; charset=utf-8"], body) }
        func events(_ body: String) -> (String, HTTPFields, String) { ("/webhooks/events", Hooks.signed(id: "m-hostile", body: body), body) }
        var int64MinTimestamp = Hooks.hubspotHeaders(uri: "/webhooks/hubspot/hs", body: "[]")
        int64MinTimestamp[HTTPField.Name("X-HubSpot-Signature-v3")!] = "x"
        int64MinTimestamp[HTTPField.Name("X-HubSpot-Request-Timestamp")!] = "-9223372036854775808"
        let cases: [(name: String, request: (String, HTTPFields, String), status: Int, names: String)] = [
            ("HubSpot timestamp Int64.min, no secret", ("/webhooks/hubspot/hs", int64MinTimestamp, "[]"), 401, "timestamp"),
            ("event step Int64.min", events(event(#""step": 2"#, with: #""step": -9223372036854775808"#)), 400, "step"),
            ("event step true", events(event(#""step": 2"#, with: #""step": true"#)), 400, "step"),
            ("event with a trailing comma", events(event(#""step": 2"#, with: #""step": 2,"#)), 400, "JSON"),
            ("event with a duplicate key", events(event(#""step": 2"#, with: #""step": 2, "step": 3"#)), 400, "step"),
            ("event id of 300 bytes", events(event(#""id": "hostile""#, with: #""id": "\#(String(repeating: "x", count: 300))""#)), 400, "id"),
            ("event external_id of 200 combining characters", events(event("hubspot:1501", with: heavy)), 400, "contact.external_id"),
            ("event e-mail of 344 bytes", events(event("ken@example.co.jp", with: longEmail)), 400, "contact.email"),
            ("HubSpot eventId true", hubspot(Self.hubspotBody.replacingOccurrences(of: #""eventId": 1"#, with: #""eventId": true"#)), 400, "eventId"),
            ("HubSpot objectId of 200 combining characters",
             hubspot(Self.hubspotBody.replacingOccurrences(of: #""objectId": 1246965"#, with: #""objectId": "\#(heavy)""#)), 400, "objectId"),
            ("HubSpot body with a trailing comma", hubspot(Self.hubspotBody.replacingOccurrences(of: "]", with: ",]")), 400, "JSON"),
            ("Pipedrive meta.id of 200 combining characters",
             pipedrive(Self.pipedriveBody.replacingOccurrences(of: "6ba407fc-006d-4556-9804-8298e584a288", with: heavy)), 400, "id"),
            ("Pipedrive body with a trailing comma", pipedrive(Self.pipedriveBody.replacingOccurrences(of: #""version": "2.0"}"#, with: #""version": "2.0",}"#)), 400, "JSON"),
            ("Salesforce envelope never closed", salesforce(String(Self.salesforceBody.dropLast(30))), 400, "Fault"),
            ("Salesforce Id of 300 bytes",
             salesforce(Self.salesforceBody.replacingOccurrences(of: "0067F000003pmdWQAQ", with: String(repeating: "0", count: 300))), 400, "Id"),
        ]
        try await TestDatabase.with { client, _ in
            let router = WebhookRouter(settings: .init(eventsSecret: Hooks.eventsSecret, maxBodyBytes: 1 << 20, connectors: Hooks.connectors()),
                                       client: client, logger: TestDatabase.logger).router()
            try await Application(router: router).test(.router) { http in
                for item in cases {
                    let (path, headers, body) = item.request
                    let (status, text) = try await http.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body)) {
                        ($0.status.code, String(buffer: $0.body))
                    }
                    #expect(status == item.status, "\(item.name): \(status) \(text.prefix(300))")
                    #expect(text.contains(item.names), "\(item.name): the answer names \(item.names): \(text.prefix(300))")
                    #expect(!text.contains("\n") || text.hasPrefix("<"), "\(item.name): one line: \(text.prefix(300))")
                    try await http.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok, "\(item.name): still serving") }
                }
            }
            #expect(try await Hooks.count(client) == 0, "none of them stored anything")
        }
    }
}
