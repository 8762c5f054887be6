/// Where a virtio-net device's frames go and come from: user-mode NAT, a socket link, a tap device.
///
/// The device calls everything except `start`'s callback on the machine thread. A backend usually serves
/// its host side on a thread of its own and hands frames for the guest over through a locked queue,
/// calling `framesAvailable` (from any thread) when that queue stops being empty, so the machine can wake
/// its run loop and deliver them.
public protocol NetworkBackend: AnyObject {
    /// What the user called it, for messages ("netdev n0 (user)").
    var label: String { get }
    /// The link MTU the card should advertise (VIRTIO_NET_F_MTU), or nil for the guest's default (1500).
    var mtu: Int? { get }
    /// True when every frame it delivers carries correct checksums (libslirp builds its own packets), so
    /// the card may tell the guest not to verify them (VIRTIO_NET_HDR_F_DATA_VALID).
    var deliversValidChecksums: Bool { get }
    /// Starts serving; `framesAvailable` may be called from any thread from now on.
    func start(framesAvailable: @escaping () -> Void)
    /// One Ethernet frame from the guest (no virtio header). Never blocks: a backend that cannot keep up
    /// drops frames, as a busy link would.
    func transmit(_ frame: UnsafeRawBufferPointer)
    /// The oldest frame waiting for the guest, left in place (nil when none waits).
    func peekReceived() -> [UInt8]?
    /// Removes the frame `peekReceived` returned.
    func dropReceived()
    /// True when a frame waits for the guest (cheap; checked by the run loop between slices).
    var hasReceived: Bool { get }
    /// Stops the backend's thread and closes its host resources.
    func shutdown()
}

/// A network card as the machine is configured with it: a backend and the card's MAC address.
public struct NetworkCard {
    public var backend: NetworkBackend
    public var mac: [UInt8]
    public init(backend: NetworkBackend, mac: [UInt8]) { self.backend = backend; self.mac = mac }
}
