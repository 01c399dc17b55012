// swift-tools-version:6.1
import Foundation
import PackageDescription

// librdkafka 2.8.0 is built by scripts/setup.sh into this project-local prefix (Debian
// bookworm's 2.0.2 cannot talk to current brokers). pkg-config finds it through
// PKG_CONFIG_PATH, which the Makefile sets; the rpath lets binaries find it at run time.
let rdkafkaLib = Context.packageDirectory + "/.deps/librdkafka/lib"

let package = Package(
    name: "Beckon",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "beckon", targets: ["beckon"]),
        .library(name: "BeckonCore", targets: ["BeckonCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .target(name: "CBeckonSIMD"),
        .target(
            name: "BeckonCore",
            dependencies: ["CBeckonSIMD", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "BeckonKafka",
            dependencies: ["CRdKafka", .product(name: "Logging", package: "swift-log")],
            linkerSettings: [.unsafeFlags(["-Xlinker", "-rpath", "-Xlinker", rdkafkaLib])]
        ),
        .target(
            name: "BeckonPostgres",
            dependencies: ["CLibPQ", "BeckonCore", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "Beckon",
            dependencies: [
                "BeckonCore", "BeckonKafka", "BeckonPostgres",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "beckon",
            dependencies: [
                "Beckon", "BeckonCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .executableTarget(
            name: "beckon-fuzz",
            dependencies: ["BeckonCore"]
        ),
        .target(
            name: "BeckonTestSupport",
            dependencies: ["Beckon", "BeckonKafka", "BeckonPostgres", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "BeckonCoreTests",
            dependencies: ["BeckonCore", "CBeckonSIMD", .product(name: "PropertyBased", package: "swift-property-based")]
        ),
        .testTarget(
            name: "BeckonIntegrationTests",
            dependencies: [
                "Beckon", "BeckonCore", "BeckonKafka", "BeckonPostgres", "BeckonTestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)

// Benchmarks (ordo-one/benchmark) only when asked for, so `make test` never builds them:
//   BECKON_BENCHMARKS=1 swift package --scratch-path .build-bench benchmark   (make bench)
if ProcessInfo.processInfo.environment["BECKON_BENCHMARKS"] == "1" {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: []))
    package.targets.append(.executableTarget(
        name: "DecodeAndCore",
        dependencies: ["BeckonCore", .product(name: "Benchmark", package: "benchmark")],
        path: "Benchmarks/DecodeAndCore",
        plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
    ))
}
