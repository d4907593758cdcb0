// swift-tools-version: 6.2
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "tttd",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tttd", targets: ["tttd"]),
        .executable(name: "tttctl", targets: ["tttctl"]),
        .executable(name: "tttsim", targets: ["tttsim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-configuration", from: "1.4.0", traits: [.defaults, "YAML"]),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // C: libsystemd (sd_notify, sd_journal_sendv) and the few declarations Glibc hides.
        .systemLibrary(name: "CSystemd", path: "Sources/CSystemd", pkgConfig: "libsystemd",
                       providers: [.apt(["libsystemd-dev"])]),
        .target(name: "CShims", path: "Sources/CShims"),
        // C: zlib, for TikTok's gzip and deflate answers (its headers come from zlib1g-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // C: SMTP through libcurl (curl_easy_setopt is variadic, so Swift calls a C function). libcurl
        // is loaded at run time when an e-mail channel is configured; its headers come from libcurl4-openssl-dev.
        .target(name: "CCurlShim", path: "Sources/CCurlShim"),

        // Domain: value types and rules shared by everything (usernames, roles, accounts).
        .target(name: "TTTDomain", swiftSettings: strict),
        // Metrics: the catalogue of what tttd exports (names, help, buckets) and the request metrics
        // the ASR and LLM clients share; recorded through swift-metrics, exported by the daemon.
        .target(name: "TTTMetrics", dependencies: [
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // What an HTTP server said when it refused, as tttd's clients read it: Retry-After, a one-line
        // reason from its body with the key taken out, why a request got no answer.
        .target(name: "TTTHTTPReplies", dependencies: [
            "TTTDomain",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),
        // Configuration: YAML file + TTTD_* environment + credentials directory, validated.
        .target(name: "TTTConfig", dependencies: [
            "TTTDomain",
            .product(name: "Configuration", package: "swift-configuration"),
            .product(name: "SystemPackage", package: "swift-system"),
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: strict),
        // Swift concurrency on NIO's event loops: the global executor and sleeps on the loops' timers.
        .target(name: "TTTEventLoop", dependencies: [
            "CShims",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),
        // Store: PostgreSQL (pooled), embedded migrations, repositories.
        .target(name: "TTTStore", dependencies: [
            "TTTDomain", "TTTEventLoop",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Control protocol: JSON-RPC 2.0 messages shared by the server and tttctl.
        .target(name: "TTTControl", dependencies: [
            "TTTDomain",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),
        // systemd: readiness/status/watchdog notifications and the journald log handler.
        .target(name: "TTTSystemd", dependencies: [
            "CSystemd", "CShims",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // The daemon: services wired by tttd's main (control server, status, watchdog).
        .target(name: "TTTDaemon", dependencies: [
            "TTTDomain", "TTTConfig", "TTTEventLoop", "TTTStore", "TTTControl", "TTTSystemd", "TTTTikTok", "TTTDetection", "TTTTranscription", "TTTModeration", "TTTAnalysis", "TTTAlerts", "TTTMetrics", "CShims",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], swiftSettings: strict),

        .executableTarget(name: "tttd", dependencies: [
            "TTTDaemon", "TTTConfig", "TTTAnalysis", "TTTAlerts", "TTTEventLoop",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict),
        // TikTok: the endpoints tttd reads, their parsing, and the HTTP client per egress.
        .target(name: "TTTTikTok", dependencies: [
            "TTTDomain", "TTTHTTPReplies", "CZlib",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: strict),
        // Detection: the request budget per egress, the claim queue, and the detection service.
        .target(name: "TTTDetection", dependencies: [
            "TTTDomain", "TTTEventLoop", "TTTMetrics", "TTTStore", "TTTTikTok",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // Transcription: ffmpeg capture, voice-activity windows, the OpenAI-compatible ASR client,
        // the hallucination filter, and the supervised pipeline per live.
        .target(name: "TTTTranscription", dependencies: [
            "TTTDomain", "TTTHTTPReplies", "TTTMetrics", "TTTStore", "TTTTikTok", "CShims",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // Analysis: the prompt template, the OpenAI-compatible chat analyzer with structured-output
        // fallbacks, lenient parsing and strict validation of verdicts, and the risk score.
        .target(name: "TTTAnalysis", dependencies: [
            "TTTDomain", "TTTHTTPReplies", "TTTMetrics",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // Alerts: e-mail through libcurl and Standard Webhooks, the channels an alert is delivered on.
        .target(name: "TTTAlerts", dependencies: [
            "TTTDomain", "TTTHTTPReplies", "CCurlShim",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Moderation: windows judged as they come (budget, backlog, cache), alerts with evidence,
        // and the delivery of events to e-mail and webhooks (the outbox worker).
        .target(name: "TTTModeration", dependencies: [
            "TTTDomain", "TTTMetrics", "TTTStore", "TTTAnalysis", "TTTAlerts",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // tttsim: a TikTok emulator (web and webcast endpoints, FLV live audio, faults) for tests and demos.
        .target(name: "TTTSim", dependencies: [
            "TTTDomain",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        .executableTarget(name: "tttsim", dependencies: [
            "TTTSim",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict),
        // bench/detection's client floor on SwiftNIO (floor.c's, on an event loop).
        .executableTarget(name: "niofloor", dependencies: [
            "TTTDomain", "TTTEventLoop",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "bench/detection/niofloor", swiftSettings: strict),
        .executableTarget(name: "tttctl", dependencies: [
            "TTTControl", "TTTDomain",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict),

        // What the test targets share: programs run to completion off Swift's cooperative threads.
        .target(name: "TestSupport", path: "Tests/TestSupport", swiftSettings: strict),

        .testTarget(name: "TTTDomainTests", dependencies: ["TTTDomain"]),
        .testTarget(name: "TTTConfigTests", dependencies: ["TTTConfig"]),
        .testTarget(name: "TTTHTTPRepliesTests", dependencies: [
            "TTTHTTPReplies",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "TTTStoreTests", dependencies: [
            "TTTStore", "TTTConfig", "TTTDomain",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "TTTControlTests", dependencies: [
            "TTTControl",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "TTTSystemdTests", dependencies: ["TTTSystemd", "TestSupport"]),
        .testTarget(name: "TTTTikTokTests", dependencies: [
            "TTTTikTok", "TestSupport",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ]),
        .testTarget(name: "TTTEventLoopTests", dependencies: ["TTTEventLoop"]),
        .testTarget(name: "TTTDetectionTests", dependencies: ["TTTDetection", "TTTTikTok", "TTTDomain", "TTTStore"]),
        .testTarget(name: "TTTTranscriptionTests", dependencies: [
            "TTTTranscription",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "TTTAnalysisTests", dependencies: [
            "TTTAnalysis", "TestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "TTTAlertsTests", dependencies: [
            "TTTAlerts", "TestSupport",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "TTTSimTests", dependencies: [
            "TTTSim", "TTTDomain", "TestSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ]),
        // End to end: the real tttd and tttctl processes, a real PostgreSQL, real sockets.
        .testTarget(name: "TTTDaemonTests", dependencies: ["TTTControl", "TTTDomain", "CShims", "TestSupport"], exclude: ["Fixtures"]),
    ],
    swiftLanguageModes: [.v6]
)

// Fuzz targets (Fuzz/, `make fuzz`): libFuzzer entry points over the parsers of untrusted input.
// Declared only when scripts/fuzz builds them, so that `swift build` and `make test` neither build
// nor link them. Only tttd's own modules are instrumented (coverage for libFuzzer, ASan): the
// dependencies keep their ordinary build, so the fuzz build after `make test` recompiles tttd's
// modules and none of the dependencies'. -enable-testing: the targets call the internal parsers
// (@testable import) exactly as the daemon does, in release builds too.
if Context.environment["TTTD_FUZZ"] == "1" {
    let instrumented: SwiftSetting = .unsafeFlags(["-sanitize=fuzzer,address", "-enable-testing"])
    for target in package.targets where target.name.hasPrefix("TTT") && target.type == .regular {
        target.swiftSettings = (target.swiftSettings ?? []) + [instrumented]
    }
    package.targets += [
        .systemLibrary(name: "CLibFuzzer", path: "Fuzz/Sources/CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], path: "Fuzz/Sources/FuzzSupport"),
    ]
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("control", ["TTTControl", "TTTDomain", .product(name: "NIOCore", package: "swift-nio"),
                     .product(name: "NIOEmbedded", package: "swift-nio")]),
        ("tiktok", ["TTTTikTok", .product(name: "NIOCore", package: "swift-nio")]),
        ("asr", ["TTTTranscription"]),
        ("llm", ["TTTAnalysis"]),
        ("config", ["TTTConfig"]),
    ]
    for (name, dependencies) in fuzzTargets {
        package.targets.append(.executableTarget(
            name: "fuzz-\(name)", dependencies: ["FuzzSupport"] + dependencies, path: "Fuzz/Sources/\(name)",
            swiftSettings: [instrumented, .unsafeFlags(["-parse-as-library"])],
            linkerSettings: [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]))
    }
}
