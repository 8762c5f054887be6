/// The files a machine boots from, as read into memory.
public struct BootImages {
    public var firmware: [UInt8]
    public var kernel: [UInt8]?
    public var initrd: [UInt8]?
    public init(firmware: [UInt8], kernel: [UInt8]?, initrd: [UInt8]?) {
        self.firmware = firmware; self.kernel = kernel; self.initrd = initrd
    }
}

extension VirtMachine {
    /// Once the images are in guest RAM, a machine that can read them again keeps no copy: with many
    /// guests per host each copy (kernel + initrd, ~7 MiB for the default guest) is memory no guest uses.
    func dropBootImageCopies() {
        guard config.reloadBootImages != nil else { return }
        config.firmware = []
        config.kernel = nil
        config.initrd = nil
    }

    /// Before a reset reloads the images: reads them again if the copies were dropped.
    func reloadBootImageCopies() throws {
        guard let reload = config.reloadBootImages, config.firmware.isEmpty else { return }
        let images = try reload()
        config.firmware = images.firmware
        config.kernel = images.kernel
        config.initrd = images.initrd
    }
}
