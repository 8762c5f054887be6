#if canImport(Glibc)
import Glibc
#endif
import RivetCPU
import RivetDevices
import RivetMachine
import RivetStorage

/// Everything a ``Machine`` is built from: a plain value, filled in by a program or by `rivet run`'s options.
///
/// Paths are read when the machine is created. With no ``kernelPath`` the machine boots the default
/// guest built by `guest/build.sh` (see ``defaultGuestDirectory()``).
public struct MachineConfiguration {
    /// Debian's OpenSBI for QEMU's `virt` board (package `opensbi`).
    public static let defaultFirmwarePath = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"

    /// Firmware loaded at 0x80000000 (OpenSBI's fw_jump or fw_dynamic).
    public var firmwarePath = MachineConfiguration.defaultFirmwarePath
    /// A flat RISC-V kernel Image loaded at 0x80200000; nil boots the default guest's kernel.
    public var kernelPath: String? = nil
    /// The initial ramdisk; with no kernel path and no initrd path, the default guest's initramfs.
    public var initrdPath: String? = nil
    /// The kernel command line; nil keeps the default (`console=ttyS0 earlycon=sbi`).
    public var kernelCommandLine: String? = nil
    /// Guest RAM in bytes (at least 16 MiB).
    public var memorySize: UInt64 = 256 << 20
    /// Harts (1 to 8).
    public var hartCount = 1
    /// The widest paging mode the harts offer; the device tree says the same.
    public var mmuMode: MMUMode = .sv57
    /// Disks, one virtio-blk each, in order (Linux names them vda, vdb ...).
    public var drives: [DriveConfiguration] = []
    /// Network cards (virtio-net) with their backends (RivetNet makes user-mode NAT, socket and tap ones).
    public var networkCards: [NetworkCard] = []
    /// Deterministic mode (`--icount`): the clock follows retired instructions, not the host's time.
    public var deterministic = false
    /// How the harts execute guest code (`--accel`): `.jit` compiles hot blocks to host code (x86-64; the
    /// default there), `.interp` interprets everything. Both give the same results.
    public var accelerator: Accelerator = .hostDefault
    /// With more than one hart: a host thread per hart (default) or all on one thread; `deterministic`
    /// always uses one thread.
    public var hartThreads: HartThreading = .multi
    /// End the run (``MachineExit/stopped(_:)``) after this much work by all harts together.
    public var maxInstructions: UInt64? = nil
    /// End the run (``MachineExit/stopped(_:)``) after this many seconds of host time.
    public var timeLimitSeconds: Double? = nil
    /// Start from a saved or migrating machine instead of booting: `file:PATH`, `exec:COMMAND`,
    /// `tcp:HOST:PORT` (a live migration arriving) or `defer` (wait for QMP migrate-incoming).
    public var incoming: String? = nil
    /// Start paused (QEMU's `-S`): the run loop waits for ``Machine/resume()``.
    public var startPaused = false
    /// With a `tcp:` ``incoming``: be a failover standby (docs/failover.md) that applies the primary's
    /// checkpoints and runs the guest only when it takes over, after ``standbyHeartbeatMs`` of silence.
    public var standby = false
    /// How long a standby waits for a silent primary before it takes over (10 to 600000 ms).
    public var standbyHeartbeatMs: UInt64 = 500
    /// Mark guest RAM mergeable for the host kernel's KSM (QEMU's `mem-merge`, docs/density.md).
    public var memoryMerge = false
    /// Board settings without a field of their own above (features that add a setting to
    /// `VirtMachineConfig` reach the board through here). The fields above replace its memory size, harts,
    /// paging mode, icount, boot images, command line, disks and network cards.
    public var boardSettings = VirtMachineConfig()

    public init() {}

    /// The default guest's directory: `$RIVET_GUEST`, else `${RIVET_CACHE:-~/.cache/rivet}/guest-default`.
    public static func defaultGuestDirectory() -> String {
        if let d = environment("RIVET_GUEST") { return d }
        let cache = environment("RIVET_CACHE") ?? ((environment("HOME") ?? "/root") + "/.cache/rivet")
        return cache + "/guest-default"
    }

    /// True when ``incoming`` receives a live migration (the source still runs and holds the image locks).
    var receivesLiveMigration: Bool {
        guard let uri = incoming else { return false }
        return uri == "defer" || uri.hasPrefix("tcp:")
    }
}

/// One disk of a machine: an image file and how it is attached.
public struct DriveConfiguration {
    /// The image file.
    public var path: String
    /// raw or qcow2; nil detects it from the file (raw unless it has a qcow2 header).
    public var format: DiskFormat? = nil
    /// The guest cannot write; the image is opened read-only.
    public var readOnly = false
    /// With ``readOnly``: read an image another process writes (no exclusive lock taken).
    public var forceShare = false
    /// What a host I/O error does: report it to the guest, ignore it, or stop the machine.
    public var errorPolicy = BlockErrorPolicy()

    public init(path: String, format: DiskFormat? = nil, readOnly: Bool = false) {
        self.path = path
        self.format = format
        self.readOnly = readOnly
    }
}

func environment(_ name: String) -> String? {
    guard let v = getenv(name) else { return nil }
    return String(cString: v)
}
