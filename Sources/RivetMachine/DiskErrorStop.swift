#if canImport(Glibc)
import Glibc
#endif
import RivetDevices
import RivetMemory

/// The machine side of the `stop` disk error policy (QEMU's werror/rerror=stop): a disk holds the failed
/// request and the machine pauses until it is told to continue; the request is then retried, so a user
/// can free space and go on with nothing lost.
///
/// A disk stop is also a machine pause in QMP's terms: run state `io-error`, a STOP event, the clock frozen;
/// QMP `cont` (through `resume()`) and Ctrl-A C both retry the held requests. Every disk error is also a
/// BLOCK_IO_ERROR event (as QEMU emits it, whatever the action).
public final class DiskStopState {
    /// Set by a disk's `stop` action; the run loop runs no guest code while it is set.
    public internal(set) var isPaused = false
    /// The event that paused the machine, for messages and QMP.
    public internal(set) var lastEvent: BlockIOErrorEvent?
    /// Extra observer of disk errors (e.g. QMP's BLOCK_IO_ERROR event), called after the stderr line.
    public var onDiskError: ((BlockIOErrorEvent) -> Void)?
    /// Lines printed so far: a guest retrying a failing disk must not flood stderr.
    var linesPrinted = 0
    static let maxLines = 20
    init() {}
}

extension VirtMachine {
    /// The virtio-blk devices, in drive order.
    /// (Drive i sits in slot count-1-i; see VirtMachine.init.)
    public var blockDevices: [VirtioBlock] { virtio.prefix(config.disks.count).reversed().compactMap { $0.model as? VirtioBlock } }

    /// Sets each disk's name and rerror/werror policy (drive order) and connects its errors to the machine.
    public func configureDiskErrors(names: [String], policies: [BlockErrorPolicy]) {
        for (k, block) in blockDevices.enumerated() {
            if k < names.count { block.deviceName = names[k] }
            if k < policies.count { block.errorPolicy = policies[k] }
            block.onIOError = { [unowned self] event in self.diskError(event) }
        }
    }

    func diskError(_ event: BlockIOErrorEvent) {
        let what: String
        switch event.action {
        case .report: what = "error reported to the guest"
        case .ignore: what = "error ignored (werror/rerror=ignore)"
        case .stop, .enospc: what = "machine paused; free the space or fix the cause, then continue (Ctrl-A C)"
        }
        // A refusal of the storage layer itself (a corrupt entry) was already named in its own line.
        let pausing = event.action == .stop || event.action == .enospc
        if event.hostErrorCode != 0 || pausing {
            diskStop.linesPrinted += 1
            var line = ""
            if diskStop.linesPrinted <= DiskStopState.maxLines || pausing {
                line = "rivet: disk \(event.device): \(event.operation.rawValue) failed\(event.noSpace ? " (no space left on the host)" : ""): \(event.reason); \(what)\n"
            } else if diskStop.linesPrinted == DiskStopState.maxLines + 1 {
                line = "rivet: disk \(event.device): more I/O errors; not shown\n"
            }
            console.flush()
            var bytes = Array(line.utf8)
            _ = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress, $0.count) }
        }
        // What the disk did: QEMU names the enospc policy's pause "stop" in the event.
        let action: String
        switch event.action {
        case .report: action = "report"
        case .ignore: action = "ignore"
        case .stop, .enospc: action = "stop"
        }
        emit(.custom(name: "BLOCK_IO_ERROR", dataJSON:
            "{\"device\": \(jsonString(event.device)), \"node-name\": \(jsonString(event.device)), " +
            "\"operation\": \"\(event.operation.rawValue)\", \"action\": \"\(action)\", " +
            "\"nospace\": \(event.noSpace), \"reason\": \(jsonString(event.reason))}"))
        if pausing {
            diskStop.isPaused = true
            diskStop.lastEvent = event
            requestPause(reason: "io-error", state: .ioError)
        }
        diskStop.onDiskError?(event)
    }

    /// A JSON string literal (event data is built here, below the QMP module).
    func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case _ where u.value < 0x20: out += "\\u00" + (u.value < 0x10 ? "0" : "") + String(u.value, radix: 16)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }

    /// After a snapshot restore: paused again if a restored disk holds a `stop` (its requests wait for continue).
    public func pauseIfDisksStopped() {
        if blockDevices.contains(where: { $0.isStopped }) {
            diskStop.isPaused = true
            requestPause(reason: "io-error", state: .ioError)
        }
    }

    /// Continues after a `stop`: held requests are retried first, in order (a failure pauses again).
    public func continueAfterDiskStop() {
        guard diskStop.isPaused else { return }
        diskStop.isPaused = false
        if control.runState == .ioError { resume() }
        for slot in virtio {
            guard let block = slot.model as? VirtioBlock, block.isStopped || block.heldRequestCount > 0 else { continue }
            block.continueAfterStop()
            slot.notify(queue: 0)
        }
    }

    /// The run loop while paused: the console stays live (Ctrl-A X quits, Ctrl-A C continues).
    /// Returns a machine exit when the user quits or the wall-clock limit passes, nil once continued.
    func waitWhileDiskStopped(wallDeadline: UInt64?, wallSeconds: Double?) -> MachineExit? {
        while diskStop.isPaused {
            if let d = wallDeadline, VirtualClock.hostNanoseconds() >= d {
                return .stopped("time limit of \(wallSeconds!) s reached (paused by a disk error)")
            }
            // QMP requests (cont, quit, query-status ...) are served while stopped too.
            if control.hasRequests, let exit = serviceRequests() { return exit }
            switch console.pump(into: uart) {
            case .quit: return .quitByUser
            case .resume: continueAfterDiskStop()
            case .none: break
            }
            console.flush()
            if diskStop.isPaused { usleep(20_000) }
        }
        return nil
    }
}
