// swift-tools-version:6.0
// libFuzzer targets for Rivet, built only for fuzzing: `swift build -c release --sanitize=fuzzer` here.
// The modules under test are the main package's own sources (symlinks in Sources/), so the main
// Package.swift and its normal build stay untouched. See docs/fuzzing.md and run.sh.
import PackageDescription

let package = Package(
    name: "RivetFuzz",
    dependencies: [
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
    ],
    targets: [
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .target(name: "RivetSnapshot", dependencies: ["CZlib"]),
        .target(name: "RivetMemory", dependencies: ["RivetSnapshot", .product(name: "Atomics", package: "swift-atomics")]),
        .target(name: "RivetStorage", dependencies: ["CZlib"]),
        .target(name: "RivetDevices", dependencies: ["RivetMemory", "RivetStorage", "RivetSnapshot"]),
        .target(name: "FuzzSupport"),
        // The qcow2 reader (open, read, extents) and checker.
        .executableTarget(name: "FuzzQcow2", dependencies: ["RivetStorage"]),
        // The ELF loader (parse, load into RAM).
        .executableTarget(name: "FuzzELF", dependencies: ["RivetMemory"]),
        // The device-tree writer, from board configurations derived from the input.
        .executableTarget(name: "FuzzDeviceTree", dependencies: ["RivetDevices", "FuzzSupport"]),
        // virtio-mmio registers and virtqueues (blk and rng) against guest RAM the input fills.
        .executableTarget(name: "FuzzVirtio", dependencies: ["RivetDevices", "RivetMemory", "RivetStorage", "FuzzSupport"]),
        // The command-line size parsers (rivet run --memory, rivet img sizes).
        .executableTarget(name: "FuzzSizes", dependencies: ["RivetStorage"]),
    ],
    swiftLanguageModes: [.v5]
)
