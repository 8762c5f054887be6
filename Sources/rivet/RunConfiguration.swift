import RivetKit

/// `rivet run`'s options as a machine configuration (the library builds and checks the machine).
extension Run {
    func machineConfiguration() throws -> MachineConfiguration {
        if incoming != nil && dtbOut != nil {
            throw CLIError("--dtb-out cannot be combined with --incoming (a restored machine's device tree is in its RAM)")
        }
        var c = MachineConfiguration()
        c.firmwarePath = bios
        c.kernelPath = kernel
        c.initrdPath = initrd
        c.kernelCommandLine = append
        c.memorySize = try parseMemorySize(memory)
        c.hartCount = smp
        if let text = cpu { c.mmuMode = try CPUOption(text).mmuMode }
        c.deterministic = icount
        c.accelerator = try AccelOption.parse(accel)
        c.boardSettings.translationThreshold = try AccelOption.threshold()
        c.hartThreads = try hartThreadsOption()
        c.maxInstructions = maxInstructions
        c.timeLimitSeconds = timeLimit
        c.incoming = incoming
        c.startPaused = noStart
        c.drives = try drive.map { try DriveSpec($0).configuration }
        c.networkCards = try NetworkOptions(netdevs: netdev, devices: device.filter { !DensityOptions.isBalloon($0) }, nics: nic).makeCards()
        c.boardSettings.balloon = try DensityOptions.balloon(device.filter(DensityOptions.isBalloon))
        c.memoryMerge = try DensityOptions.onOff("--memory-merge", memoryMerge)
        if standby && replicate != nil { throw CLIError("--standby and --replicate cannot be combined") }
        c.standby = standby
        c.standbyHeartbeatMs = heartbeatMs
        return c
    }
}

extension Run {
    /// `--hart-threads single|multi`.
    func hartThreadsOption() throws -> HartThreading {
        guard let mode = HartThreading(rawValue: hartThreads) else {
            throw CLIError("--hart-threads must be single or multi, not '\(hartThreads)'")
        }
        return mode
    }
}
