#if canImport(Glibc)
import Glibc
#endif

/// What a disk does when the host fails a request: QEMU's `rerror=` / `werror=` actions.
public enum BlockErrorAction: String, Sendable, CaseIterable {
    /// Complete the request with an I/O error for the guest.
    case report
    /// Complete the request as if it had succeeded (data may be lost: the user asked for it).
    case ignore
    /// Keep the request, pause the machine; it is retried when the machine continues.
    case stop
    /// `stop` when the host is out of space (ENOSPC), `report` otherwise.
    case enospc
}

/// The operation a failed request was doing (QMP's BLOCK_IO_ERROR `operation`: "read" or "write").
public enum BlockOperation: String, Sendable { case read, write }

/// Per-disk error policy; the defaults are QEMU's (rerror=report, werror=enospc).
public struct BlockErrorPolicy: Sendable, Equatable {
    public var read: BlockErrorAction = .report
    public var write: BlockErrorAction = .enospc
    public init(read: BlockErrorAction = .report, write: BlockErrorAction = .enospc) {
        self.read = read
        self.write = write
    }

    /// The action taken for one error: `enospc` resolved by the host errno.
    public func action(for operation: BlockOperation, errorCode: Int32) -> BlockErrorAction {
        let a = operation == .read ? read : write
        if a == .enospc { return errorCode == ENOSPC ? .stop : .report }
        return a
    }
}

/// One disk error as the machine sees it: enough for the stderr line and QMP's BLOCK_IO_ERROR event
/// (device, operation, action, nospace, reason).
public struct BlockIOErrorEvent: Sendable {
    public let device: String
    public let operation: BlockOperation
    public let action: BlockErrorAction
    public let noSpace: Bool
    public let reason: String
    /// The host errno (0 when the storage layer refused on its own, e.g. a corrupt table entry it reported).
    public let hostErrorCode: Int32
}
