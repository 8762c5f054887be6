import RivetDevices

/// `--device virtio-balloon[,free-page-reporting=on|off]`.
public struct BalloonConfig {
    public var freePageReporting = true
    public init(freePageReporting: Bool = true) { self.freePageReporting = freePageReporting }
}

extension VirtMachine {
    /// The balloon and its transport, if the machine has one.
    public var balloon: (transport: VirtioMMIO, device: VirtioBalloon)? {
        for v in virtio { if let b = v.model as? VirtioBalloon { return (v, b) } }
        return nil
    }

    /// A new target raises the transport's configuration interrupt; the driver's new `actual` becomes a
    /// BALLOON_CHANGE event (QEMU's: `actual` is the guest's memory size in bytes after the balloon).
    func connectBalloon() {
        guard let (transport, device) = balloon else { return }
        device.onConfigChange = { [unowned transport] in transport.notifyConfigChange() }
        device.onActualChange = { [unowned self] d in
            self.emit(.custom(name: "BALLOON_CHANGE", dataJSON: "{\"actual\": \(d.actualBytes)}"))
        }
    }
}
