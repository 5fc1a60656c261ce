import CRMSyncConfig
import CRMSyncServer
import Foundation
import Hummingbird
import Logging
import NIOCore
import PostgresNIO
import ServiceLifecycle

/// The webhook receiver as `serve` runs it: the router over a group-commit inbox batcher.
public struct WebhookReceiver: Sendable {
    public let batcher: InboxBatcher
    public let router: WebhookRouter

    public init(config: AppConfig, client: PostgresClient, logger: Logger, maxBodyBytes: Int = 1 << 20,
                batching: InboxBatcher.Settings = .init(), ready: @escaping @Sendable () async -> Bool = { true }) {
        batcher = InboxBatcher(client: client, logger: logger, settings: batching)
        let settings = WebhookRouter.Settings(eventsSecret: config.events?.secret, maxBodyBytes: maxBodyBytes,
                                              connectors: config.webhookConnectors)
        router = WebhookRouter(settings: settings, client: client, logger: logger, ready: ready, inbox: batcher)
    }

    /// Batcher and HTTP server as services, in shutdown-safe order (see `InboxBatcherService`).
    public func services(host: String, port: Int, logger: Logger,
                         onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> [ServiceGroupConfiguration.ServiceConfiguration] {
        let app = Application(router: router.router(), server: WebhookRouter.server, configuration: .init(address: .hostname(host, port: port)),
                              onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? port) }, logger: logger)
        return [.init(service: InboxBatcherService(batcher)), .init(service: app)]
    }
}

extension AppConfig {
    /// Every connector may receive webhooks at `/webhooks/{kind}/{name}` once it has its secret
    /// (HubSpot, Pipedrive) or its organisation id (Salesforce).
    public var webhookConnectors: [WebhookConnector] {
        connectors.map {
            WebhookConnector(name: $0.name, kind: $0.kind, secret: $0.webhookSecret, organizationID: $0.organizationID, mapping: $0.mapping)
        }
    }
}
