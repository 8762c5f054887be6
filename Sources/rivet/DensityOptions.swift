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
}
