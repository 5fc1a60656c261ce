import CRMSyncConfig
import Foundation
import Testing
import Yams

/// The files a user deploys from: they must load as shipped. (`docker-compose config`, Debian's
/// `docker-compose`, also accepts the compose file; it is not on every machine the tests run on,
/// so the shape the README promises is checked here.)
@Suite struct DeploymentFilesTests {
    let root = ConfigLoaderTests.root
    let environment = ConfigLoaderTests().environment

    @Test func theExampleConfigLoadsAsShipped() throws {
        let config = try ConfigLoader.load(path: "\(root)/crm-sync.example.yaml", environment: environment)
        #expect(config.connectors.map(\.name) == ["hubspot-main"])
        #expect(config.connectors.first?.workspace == "default")
    }

    @Test func theComposeDemoConfigLoadsWithTheImagesMappings() throws {
        // Inside the image the mappings live under /opt/crm-sync; here, in the checkout.
        let text = try String(contentsOfFile: "\(root)/examples/crm-sync.compose-demo.yaml", encoding: .utf8)
            .replacingOccurrences(of: "/opt/crm-sync/", with: "\(root)/")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("compose-demo-\(UUID().uuidString).yaml").path
        try text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let config = try ConfigLoader.load(path: file, environment: ["HUBSPOT_TOKEN": "sim-token"])
        #expect(config.connectors.first?.baseURL == "http://simulator:9000")
    }

    @Test func theComposeFileRunsPostgresAOneShotMigrateTwoHealthCheckedReplicasAndTheSimulatorProfile() throws {
        let text = try String(contentsOfFile: "\(root)/docker-compose.yml", encoding: .utf8)
        let compose = try #require(try Yams.load(yaml: text) as? [String: Any])
        let services = try #require(compose["services"] as? [String: [String: Any]])
        #expect(Set(services.keys) == ["postgres", "migrate", "serve-1", "serve-2", "simulator"])
        #expect((services["postgres"]?["image"] as? String)?.hasPrefix("postgres:15") == true)
        #expect(services["migrate"]?["command"] as? [String] == ["migrate"])
        #expect(services["migrate"]?["restart"] as? String == "no")
        for name in ["serve-1", "serve-2"] {
            let service = try #require(services[name])
            let command = try #require(service["command"] as? [String])
            #expect(command.first == "serve", "\(name)")
            // Compose's SIGKILL must come after serve's own grace has run out.
            let grace = command.firstIndex(of: "--shutdown-grace").map { command[$0 + 1] }
            #expect(grace == "10s" && service["stop_grace_period"] as? String == "20s", "\(name): \(command)")
            let health = try #require((service["healthcheck"] as? [String: Any])?["test"] as? [String])
            #expect(health.contains { $0.hasSuffix("/readyz") }, "\(name) health check")
            let after = try #require((service["depends_on"] as? [String: Any])?["migrate"] as? [String: Any])
            #expect(after["condition"] as? String == "service_completed_successfully", "\(name) waits for the migration")
            let env = try #require(service["environment"] as? [String: Any])
            #expect((env["DATABASE_URL"] as? String)?.contains("@postgres:5432/") == true)
        }
        #expect(services["simulator"]?["profiles"] as? [String] == ["demo"])
    }
}
