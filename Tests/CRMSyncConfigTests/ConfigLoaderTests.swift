import CRMSyncConfig
import CRMSyncCore
import Foundation
import Testing

@Suite struct ConfigLoaderTests {
    static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    let environment = [
        "HUBSPOT_TOKEN": "pat-secret", "HUBSPOT_CLIENT_SECRET": "s3cret",
        "EVENTS_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "OUTBOUND_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ]

    let contractExample = """
        database_url: postgres://user@127.0.0.1:5432/crm
        connectors:
          - name: hubspot-main
            kind: hubspot
            base_url: https://api.hubapi.com
            token_env: HUBSPOT_TOKEN
            mapping: Mappings/hubspot.yaml
            poll_interval: 5m
            webhook_secret_env: HUBSPOT_CLIENT_SECRET
        events:
          secret_env: EVENTS_WEBHOOK_SECRET
        outbound:
          url: https://ma.example.com/hooks/crm-sync
          secret_env: OUTBOUND_WEBHOOK_SECRET
        attribution:
          gross_margin: 0.5
          lookback_days: 90
          time_decay_half_life_days: 7
        """

    func parse(_ text: String, environment: [String: String]? = nil) throws(ConfigError) -> AppConfig {
        try ConfigLoader.parse(text: text, file: "crm-sync.yaml", baseDirectory: Self.root, environment: environment ?? self.environment)
    }

    @Test func theContractsExampleLoads() throws {
        let config = try parse(contractExample)
        #expect(config.connectors.count == 1)
        let hubspot = try #require(config.connectors.first)
        #expect(hubspot.kind == .hubspot)
        #expect(hubspot.token == "pat-secret")
        #expect(hubspot.pollInterval == .seconds(300))
        #expect(hubspot.mapping.canonicalStage(pipeline: "default", stage: "closedwon") == .closedWon)
        #expect(config.attribution.grossMargin == Decimal(string: "0.5"))
        #expect(config.outbound?.url == "https://ma.example.com/hooks/crm-sync")
    }

    @Test func anUnknownKeyNamesFileLineAndKey() {
        let text = contractExample.replacingOccurrences(of: "    poll_interval: 5m", with: "    poll_intervall: 5m")
        #expect(throws: ConfigError.self) { try parse(text) }
        do {
            _ = try parse(text)
        } catch {
            #expect(error.file == "crm-sync.yaml")
            #expect(error.line == 8)
            #expect(error.key == "connectors[0].poll_intervall")
            #expect(error.description.hasPrefix("crm-sync.yaml:8: connectors[0].poll_intervall: unknown key"))
            #expect(!error.description.contains("\n"))
        }
    }

    @Test func aMissingEnvironmentVariableIsNamedButNoSecretIsPrinted() {
        var environment = self.environment
        environment["HUBSPOT_TOKEN"] = nil
        do {
            _ = try parse(contractExample, environment: environment)
            Issue.record("expected an error")
        } catch {
            #expect(error.description == "crm-sync.yaml:6: connectors[0].token_env: environment variable HUBSPOT_TOKEN is not set")
        }
    }

    @Test func aMappingNamingAnUnknownStageIsRefused() {
        let text = """
            crm: hubspot
            pipelines:
              default:
                stages:
                  closedwon: closed_wonn
            sales_owned: [sql]
            """
        do {
            _ = try MappingLoader.parse(text: text, file: "Mappings/bad.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.description.hasPrefix("Mappings/bad.yaml:5: pipelines.default.stages.closedwon: unknown canonical stage 'closed_wonn'"))
        }
    }

    @Test func theShippedMappingsLoadAndMarkSalesOwnedStages() throws {
        for crm in CRMKind.allCases {
            let mapping = try MappingLoader.load(path: "\(Self.root)/Mappings/\(crm.rawValue).yaml")
            #expect(mapping.crm == crm)
            #expect(mapping.salesOwned.contains(.negotiation))
            #expect(!mapping.salesOwned.contains(.closedLost))
            let stages = Set(mapping.pipelines.values.flatMap(\.stages.values))
            #expect(stages.contains(.closedWon) && stages.contains(.closedLost))
            #expect(mapping.policy.handoffThreshold > 0)
        }
    }

    @Test func aHandOffMayNameWhoMissedSLAsAreEscalatedTo() throws {
        let shipped = try String(contentsOfFile: "\(Self.root)/Mappings/hubspot.yaml", encoding: .utf8)
        #expect(try MappingLoader.parse(text: shipped, file: "hubspot.yaml").policy.slaEscalateTo == nil)
        let text = shipped.replacingOccurrences(of: "    threshold: 50\n", with: "    threshold: 50\n    escalate_to: \"manager-9\"\n")
        #expect(text != shipped)
        #expect(try MappingLoader.parse(text: text, file: "hubspot.yaml").policy.slaEscalateTo == "manager-9")
    }

    @Test func badValuesAreRefusedWithTheKey() {
        let badKind = contractExample.replacingOccurrences(of: "kind: hubspot", with: "kind: zoho")
        #expect(throws: ConfigError.self) { try parse(badKind) }
        let badMargin = contractExample.replacingOccurrences(of: "gross_margin: 0.5", with: "gross_margin: 1.5")
        do { _ = try parse(badMargin); Issue.record("expected an error") } catch {
            #expect(error.key == "attribution.gross_margin")
        }
    }
}
