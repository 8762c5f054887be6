#if canImport(Glibc)
import Glibc
#endif
import RivetMachine

// `--memory-merge on` (MachineConfiguration.memoryMerge): guest RAM is offered to the host's KSM.

/// Marks guest RAM mergeable; says once on stderr when the host cannot merge it.
func applyMemoryMerge(_ machine: VirtMachine) {
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

func firstLine(_ path: String) -> String? {
    guard let f = fopen(path, "r") else { return nil }
    defer { fclose(f) }
    var buffer = [CChar](repeating: 0, count: 64)
    guard fgets(&buffer, 64, f) != nil else { return nil }
    return String(cString: buffer)
}
