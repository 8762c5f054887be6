#if canImport(Glibc)
import Glibc
#endif
import RivetMachine

/// The options for many guests per host (docs/density.md): `--device virtio-balloon[,...]` and
/// `--memory-merge on|off`.
enum DensityOptions {
    static func isBalloon(_ deviceSpec: String) -> Bool {
        let kind = deviceSpec.split(separator: ",", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return kind == "virtio-balloon" || kind == "virtio-balloon-device"
    }

    /// `virtio-balloon[,free-page-reporting=on|off]` (reporting is on unless turned off).
    static func balloon(_ specs: [String]) throws -> BalloonConfig? {
        guard !specs.isEmpty else { return nil }
        guard specs.count == 1 else { throw CLIError("--device virtio-balloon: at most one balloon") }
        let spec = try NetworkOptions.Spec(option: "--device", specs[0])
        var config = BalloonConfig()
        for (key, value) in spec.values {
            switch key {
            case "free-page-reporting": config.freePageReporting = try onOff("--device \(specs[0]): \(key)", value)
            case "id": break
            default: throw CLIError("--device \(specs[0]): unknown option '\(key)' (supported: free-page-reporting=on|off)")
            }
        }
        return config
    }

    static func onOff(_ what: String, _ value: String) throws -> Bool {
        switch value {
        case "on", "yes", "true": return true
        case "off", "no", "false": return false
        default: throw CLIError("\(what): '\(value)' is not on or off")
        }
    }

    /// Marks guest RAM mergeable; says once on stderr when the host cannot merge it.
    static func applyMemoryMerge(_ machine: VirtMachine) {
        if case .unsupported(let why) = machine.ram.setMergeable(true) {
            fputs("rivet: --memory-merge on: the host kernel refused MADV_MERGEABLE (\(why)); guest RAM will not be merged\n", stderr)
            return
        }
        let run = "/sys/kernel/mm/ksm/run"
        if access("/sys/kernel/mm/ksm", F_OK) != 0 {
            fputs("rivet: --memory-merge on: this host has no KSM (/sys/kernel/mm/ksm is missing); guest RAM will not be merged\n", stderr)
        } else if let state = firstLine(run), state.hasPrefix("0") {
            let hint = access(run, W_OK) == 0 ? "start it with: echo 1 > \(run)" : "\(run) is not writable here; ask the host's administrator"
            fputs("rivet: --memory-merge on: KSM is not running on this host (\(run) is 0): \(hint)\n", stderr)
        }
    }

    static func firstLine(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, 64, f) != nil else { return nil }
        return String(cString: buffer)
    }
}
