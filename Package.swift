// swift-tools-version:6.0
// Rivet: a RISC-V 64 system virtual machine. One module per layer; dependencies point down only.
import PackageDescription

// No unsafeFlags: a package that uses them cannot be depended on by another package. The hot path
// turns off exclusivity checks per declaration instead (@exclusivity(unchecked), docs/performance.md).
let optimize: [SwiftSetting] = []

let package = Package(
    name: "Rivet",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "rivet", targets: ["rivet"]),
        // The embeddable machine API (docs/library.md): `import RivetKit`.
        .library(name: "RivetKit", targets: ["RivetKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-atomics", from: "1.2.0"),
    ],
    targets: [
        // zlib, for compressed qcow2 clusters (Debian's zlib1g-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // libslirp, QEMU's user-mode network stack (Debian's libslirp-dev).
        .systemLibrary(name: "CSlirp", path: "Sources/CSlirp", pkgConfig: "slirp", providers: [.apt(["libslirp-dev"])]),
        // Versioned, sectioned state encoding used by snapshots and migration.
        .target(name: "RivetSnapshot", dependencies: ["CZlib"], swiftSettings: optimize),
        // Instruction encodings and the objdump-compatible disassembler.
        .target(name: "RivetISA", swiftSettings: optimize),
        // IEEE-754 arithmetic with RISC-V semantics (rounding modes, fflags, NaN rules).
        .target(name: "RivetFloat", swiftSettings: optimize),
        // Guest-physical memory: RAM, the MMIO bus, code-page tracking.
        .target(name: "RivetMemory", dependencies: ["RivetSnapshot", .product(name: "Atomics", package: "swift-atomics")], swiftSettings: optimize),
        // The hart: state, decoder, interpreter, CSRs, traps, MMU/TLB.
        .target(name: "RivetCPU", dependencies: ["RivetFloat", "RivetMemory", "RivetSnapshot", "RivetJIT",
                                               .product(name: "Atomics", package: "swift-atomics")], swiftSettings: optimize),
        // Block devices: raw and qcow2 with backing chains.
        .target(name: "RivetStorage", dependencies: ["CZlib"], swiftSettings: optimize),
        // Platform devices: CLINT, PLIC, UART, virtio-mmio (blk, net, rng), RTC, syscon.
        .target(name: "RivetDevices", dependencies: ["RivetMemory", "RivetStorage", "RivetSnapshot"], swiftSettings: optimize),
        // Network backends for virtio-net: user-mode NAT (libslirp), socket links, tap devices.
        .target(name: "RivetNet", dependencies: ["CSlirp", "RivetDevices"], swiftSettings: optimize),
        // The `virt` board: memory map, device tree, boot loading, run loop.
        .target(name: "RivetMachine", dependencies: ["RivetDevices", "RivetCPU", "RivetMemory", "RivetStorage", "RivetSnapshot",
                                                   .product(name: "Atomics", package: "swift-atomics")], swiftSettings: optimize),
        // The QMP management socket (QEMU's machine protocol) in front of a running machine.
        .target(name: "RivetQMP", dependencies: ["RivetMachine", "RivetSnapshot"], swiftSettings: optimize),
        // The GDB remote stub (gdb-multiarch's protocol) in front of a machine or a process.
        .target(name: "RivetGDB", dependencies: ["RivetMachine", "RivetUser", "RivetCPU"], swiftSettings: optimize),
        // The process virtual machine: one RISC-V Linux program on the host (rivet user).
        .target(name: "RivetUser", dependencies: ["RivetCPU", "RivetMemory", "RivetSnapshot"], swiftSettings: optimize),
        // Host code generation for the translator: W^X code memory and an x86-64 assembler (docs/translator.md).
        .target(name: "RivetJIT", swiftSettings: optimize),
        // The lockstep differential tester (issue 11): seeded random RV64GC streams run on the interpreter and
        // the translator, compared block by block (docs/translator.md, "Differential testing").
        .target(name: "RivetLockstep", dependencies: ["RivetCPU", "RivetMemory", "RivetISA"], swiftSettings: optimize),
        // The library API: a machine from a configuration value, on its own thread, with a console protocol.
        .target(name: "RivetKit", dependencies: ["RivetMachine", "RivetDevices", "RivetStorage", "RivetSnapshot", "RivetCPU"], swiftSettings: optimize),
        .executableTarget(name: "rivet", dependencies: [
            "RivetKit", "RivetMachine", "RivetQMP", "RivetGDB", "RivetCPU", "RivetISA", "RivetStorage", "RivetUser", "RivetNet", "RivetLockstep",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: optimize),
        // Programs that use the library as another package would (built with the rest, run by scripts/test).
        .executableTarget(name: "rivet-example-ask", dependencies: ["RivetKit"], path: "Examples/AskGuest"),
        .executableTarget(name: "rivet-example-many", dependencies: ["RivetKit"], path: "Examples/ManyGuests"),
        .testTarget(name: "RivetKitTests", dependencies: ["RivetKit"], exclude: ["echo.S"]),
        .testTarget(name: "RivetISATests", dependencies: ["RivetISA"]),
        .testTarget(name: "RivetFloatTests", dependencies: ["RivetFloat"], exclude: ["oracle"]),
        .testTarget(name: "RivetStorageTests", dependencies: ["RivetStorage"]),
        .testTarget(name: "RivetCPUTests", dependencies: ["RivetCPU", "RivetMemory", "RivetISA"]),
        .testTarget(name: "RivetUserTests", dependencies: ["RivetUser", "RivetCPU", "RivetMemory"]),
        .testTarget(name: "RivetMachineTests", dependencies: ["RivetMachine", "RivetQMP", "RivetSnapshot", "RivetMemory", "RivetStorage"]),
        .testTarget(name: "RivetGDBTests", dependencies: ["RivetGDB"]),
        .testTarget(name: "RivetJITTests", dependencies: ["RivetJIT"]),
        .testTarget(name: "RivetLockstepTests", dependencies: ["RivetLockstep", "RivetCPU", "RivetISA"]),
        .testTarget(name: "RivetDevicesTests", dependencies: ["RivetDevices", "RivetMemory", "RivetStorage"]),
    ],
    swiftLanguageModes: [.v5]
)
