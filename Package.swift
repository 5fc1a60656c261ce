// swift-tools-version:6.0
import PackageDescription

// The layout mirrors the architecture: a pure domain core in the middle, adapters around it
// (configuration, storage, connectors, HTTP server, simulator), wiring in CRMSyncApp, and the
// command line at the edge.
let package = Package(
    name: "crm-sync",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "crm-sync", targets: ["CRMSyncCLI"]),
        .executable(name: "crm-sync-bench", targets: ["CRMSyncBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
    ],
    targets: [
        // Domain: canonical stages, records, mappings, attribution, calendars, policies, signatures. No I/O.
        .target(
            name: "CRMSyncCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto")
            ]
        ),
        // YAML configuration and mapping files, validated on load.
        .target(
            name: "CRMSyncConfig",
            dependencies: [
                "CRMSyncCore",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // PostgreSQL: migrations, reconciliation writes, reporting reads, the embedded cluster.
        .target(
            name: "CRMSyncStorage",
            dependencies: [
                "CRMSyncCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // CRM HTTP clients: HubSpot, Salesforce, Pipedrive; rate limiting and retries.
        .target(
            name: "CRMSyncConnectors",
            dependencies: [
                "CRMSyncCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // The webhook receiver, health and metrics endpoints.
        .target(
            name: "CRMSyncServer",
            dependencies: [
                "CRMSyncCore",
                "CRMSyncStorage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The CRM simulator: each CRM's wire format over HTTP, with fault injection.
        .target(
            name: "CRMSimulator",
            dependencies: [
                "CRMSyncCore",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        // Use cases that wire adapters together: sync runs, demo, reports.
        .target(
            name: "CRMSyncApp",
            dependencies: [
                "CRMSyncCore", "CRMSyncConfig", "CRMSyncStorage", "CRMSyncConnectors",
                "CRMSyncServer", "CRMSimulator",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "CRMSyncCLI",
            dependencies: [
                "CRMSyncApp",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Benchmarks that print figures (never asserted in tests): see BENCHMARKS.md.
        .executableTarget(
            name: "CRMSyncBench",
            dependencies: [
                "CRMSyncApp", "CRMSyncTestSupport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // Shared by the test targets: a fresh PostgreSQL database per test on the server the test
        // command started.
        .target(
            name: "CRMSyncTestSupport",
            dependencies: [
                "CRMSyncStorage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "CRMSyncCoreTests", dependencies: ["CRMSyncCore"]),
        .testTarget(name: "CRMSyncConfigTests", dependencies: ["CRMSyncConfig", .product(name: "Yams", package: "Yams")]),
        .testTarget(name: "CRMSyncStorageTests", dependencies: ["CRMSyncStorage", "CRMSyncTestSupport"]),
        .testTarget(
            name: "CRMSyncConnectorsTests",
            dependencies: ["CRMSyncConnectors", "CRMSimulator", .product(name: "AsyncHTTPClient", package: "async-http-client")]
        ),
        .testTarget(
            name: "CRMSyncServerTests",
            dependencies: [
                "CRMSyncServer", "CRMSyncTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .testTarget(
            name: "CRMSimulatorTests",
            dependencies: [
                "CRMSimulator",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "CRMSyncAppTests", dependencies: ["CRMSyncApp", "CRMSyncTestSupport"]),
    ]
)
