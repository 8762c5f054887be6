import RivetKit

/// One `--drive FILE[,option...]` as QEMU spells its options.
struct DriveSpec {
    var path: String
    var format: DiskFormat? = nil
    var readOnly = false
    var forceShare = false
    var errorPolicy = BlockErrorPolicy()

    init(_ spec: String) throws {
        let parts = spec.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let path = parts.first, !path.isEmpty else { throw CLIError("--drive needs a file name") }
        self.path = path
        func onOff(_ option: String, _ value: String) throws -> Bool {
            switch value {
            case "on", "true", "yes": return true
            case "off", "false", "no": return false
            default: throw CLIError("--drive \(spec): \(option) must be on or off (got '\(value)')")
            }
        }
        for option in parts.dropFirst() {
            let kv = option.split(separator: "=", maxSplits: 1).map(String.init)
            let key = kv[0], value = kv.count > 1 ? kv[1] : nil
            switch (key, value) {
            case ("readonly", nil): readOnly = true
            case ("readonly", let v?): readOnly = try onOff(key, v)
            case ("force-share", nil): forceShare = true
            case ("force-share", let v?): forceShare = try onOff(key, v)
            case ("format", let v?):
                guard let f = DiskFormat(rawValue: v) else { throw CLIError("--drive \(spec): unknown format '\(v)' (raw or qcow2)") }
                format = f
            case ("werror", let v?):
                guard let a = BlockErrorAction(rawValue: v) else { throw CLIError("--drive \(spec): werror must be report, ignore, stop or enospc") }
                errorPolicy.write = a
            case ("rerror", let v?):
                guard let a = BlockErrorAction(rawValue: v), a != .enospc else { throw CLIError("--drive \(spec): rerror must be report, ignore or stop") }
                errorPolicy.read = a
            default: throw CLIError("--drive \(spec): unknown option '\(option)'")
            }
        }
        if forceShare && !readOnly { throw CLIError("--drive \(spec): force-share=on needs readonly") }
    }

    /// The drive for the machine configuration (the library opens it).
    var configuration: DriveConfiguration {
        var d = DriveConfiguration(path: path, format: format, readOnly: readOnly)
        d.forceShare = forceShare
        d.errorPolicy = errorPolicy
        return d
    }
}
