#if canImport(Glibc)
import Glibc
#endif
import RivetMemory
import RivetSnapshot

/// Where a machine-state stream goes or comes from, in QEMU's URI syntax.
public enum MigrationURI: Equatable {
    case file(String)
    case exec(String)
    case tcp(String)

    public static func parse(_ text: String) throws -> MigrationURI {
        if text.hasPrefix("file:") {
            let path = String(text.dropFirst(5))
            guard !path.isEmpty else { throw SnapshotError("\(text): file: needs a path") }
            return .file(path)
        }
        if text.hasPrefix("exec:") {
            let cmd = String(text.dropFirst(5))
            guard !cmd.isEmpty else { throw SnapshotError("\(text): exec: needs a command") }
            return .exec(cmd)
        }
        if text.hasPrefix("tcp:") { return .tcp(String(text.dropFirst(4))) }
        throw SnapshotError("\(text): unsupported migration URI (use file:PATH, exec:COMMAND or tcp:HOST:PORT)")
    }
}

/// A child `/bin/sh -c COMMAND` whose stdin (`childFD` 0) or stdout (1) is our end of a pipe.
final class ShellPipe {
    let pid: pid_t
    var fd: Int32
    let command: String

    init(command: String, childFD: Int32) throws {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { throw SnapshotError("exec:\(command): pipe failed") }
        for e in ends { _ = fcntl(e, F_SETFD, FD_CLOEXEC) }
        let childEnd = childFD == 0 ? ends[0] : ends[1]
        let ourEnd = childFD == 0 ? ends[1] : ends[0]
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, childEnd, childFD)
        let words: [String] = ["/bin/sh", "-c", command]
        var args: [UnsafeMutablePointer<CChar>] = []
        for w in words { args.append(w.withCString { strdup($0)! }) }
        defer { for a in args { free(a) } }
        var argv: [UnsafeMutablePointer<CChar>?] = args.map { Optional($0) } + [nil]
        var child: pid_t = 0
        let rc = posix_spawn(&child, "/bin/sh", &actions, nil, &argv, environ)
        close(childEnd)
        guard rc == 0 else { close(ourEnd); throw SnapshotError("exec:\(command): cannot start /bin/sh: \(String(cString: strerror(rc)))") }
        pid = child
        fd = ourEnd
        self.command = command
    }

    /// Closes our end and waits for the command; an error if it failed.
    func finish() throws {
        if fd >= 0 { close(fd); fd = -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        if !exited { throw SnapshotError("exec:\(command): killed by signal \(status & 0x7f)") }
        if code != 0 { throw SnapshotError("exec:\(command): exited with status \(code)") }
    }

    func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        kill(pid, SIGTERM)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    }
}

/// A file written beside its final name and renamed into place once complete and synced, so a failed or
/// interrupted save never leaves a torn file under the final name.
final class AtomicFile {
    let path: String
    let temporary: String
    var fd: Int32

    init(path: String) throws {
        self.path = path
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        temporary = dir + "." + base + ".tmp-\(getpid())"
        fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw SnapshotError("\(path): cannot create: \(String(cString: strerror(errno)))") }
    }

    func commit() throws {
        guard fsync(fd) == 0 else { let e = errno; abort(); throw SnapshotError("\(path): fsync failed: \(String(cString: strerror(e)))") }
        close(fd); fd = -1
        guard rename(temporary, path) == 0 else {
            let e = errno; unlink(temporary)
            throw SnapshotError("\(path): cannot rename into place: \(String(cString: strerror(e)))")
        }
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? "."
        let dfd = open(dir, O_RDONLY | O_DIRECTORY)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(temporary)
    }
}

extension VirtMachine {
    /// Writes the machine state to `uri` (QMP migrate), on the run-loop thread. A running machine is paused
    /// first and stays paused (QEMU's behaviour for non-live targets: state "postmigrate").
    public func saveSnapshot(to uriText: String) throws -> SnapshotStats {
        let uri = try MigrationURI.parse(uriText)
        if case .tcp = uri {
            throw SnapshotError("tcp: migration runs in the background; use startLiveMigration")
        }
        let start = VirtualClock.hostNanoseconds()
        var info = MigrationInfo()
        info.status = "setup"
        info.total = config.memorySize
        control.migrationInfo = info
        emit(.migration(status: "setup"))
        if control.runState == .running { requestPause(reason: "migration", state: .postmigrate) }
        info.status = "active"
        control.migrationInfo = info
        emit(.migration(status: "active"))
        do {
            let stats: SnapshotStats
            switch uri {
            case .file(let path):
                let file = try AtomicFile(path: path)
                do {
                    stats = try saveState(to: StreamWriter(fd: file.fd))
                    try file.commit()
                } catch { file.abort(); throw error }
            case .exec(let command):
                let child = try ShellPipe(command: command, childFD: 0)
                do {
                    stats = try saveState(to: StreamWriter(fd: child.fd))
                } catch { child.abort(); throw error }
                try child.finish()
            case .tcp: fatalError("refused above")
            }
            info.status = "completed"
            info.transferred = stats.bytes
            info.normalPages = stats.dataPages
            info.zeroPages = stats.zeroPages
            info.totalTimeMs = (VirtualClock.hostNanoseconds() - start) / 1_000_000
            control.migrationInfo = info
            emit(.migration(status: "completed"))
            return stats
        } catch {
            info.status = "failed"
            info.error = "\(error)"
            info.totalTimeMs = (VirtualClock.hostNanoseconds() - start) / 1_000_000
            control.migrationInfo = info
            emit(.migration(status: "failed"))
            throw error
        }
    }

    /// Builds the machine's state from `uri` (`--incoming`); a regular file's RAM pages are mapped
    /// copy-on-write instead of read.
    @discardableResult
    public func restoreSnapshot(from uriText: String) throws -> SnapshotStats {
        let uri = try MigrationURI.parse(uriText)
        switch uri {
        case .tcp(let spec):
            return try receiveMigration(listenOn: spec)
        case .file(let path):
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { throw SnapshotError("\(path): cannot open: \(String(cString: strerror(errno)))") }
            // The mappings keep the file's pages; the descriptor itself is no longer needed afterwards.
            defer { close(fd) }
            return try restoreState(from: StreamReader(fd: fd))
        case .exec(let command):
            let child = try ShellPipe(command: command, childFD: 1)
            do {
                let stats = try restoreState(from: StreamReader(fd: child.fd))
                try child.finish()
                return stats
            } catch { child.abort(); throw error }
        }
    }
}
