// swift-tools-version:6.0
// The core benchmark as a stand-alone program, built against a Beckon checkout named by
// BECKON_ROOT (default: this repository), so `scripts/core-ab.sh` can run two commits
// side by side. Not part of the main package.
import Foundation
import PackageDescription

let root = ProcessInfo.processInfo.environment["BECKON_ROOT"] ?? "../.."
let package = Package(
    name: "core-ab",
    dependencies: [.package(name: "Beckon", path: root)],
    targets: [
        .target(name: "CHeapInUse"),
        .executableTarget(name: "core-ab", dependencies: [.product(name: "BeckonCore", package: "Beckon"), "CHeapInUse"]),
    ]
)
