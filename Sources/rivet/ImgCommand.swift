import ArgumentParser
import RivetStorage
#if canImport(Glibc)
import Glibc
#endif

/// `rivet img`: disk image tools (qemu-img compatible).
struct Img: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "img",
        abstract: "Create, inspect, check and convert disk images.",
        subcommands: [ImgCreate.self, ImgInfo.self, ImgCheck.self, ImgCommit.self, ImgRebase.self,
                      ImgConvert.self, ImgMap.self, ImgSnapshot.self, ImgStress.self, ImgBench.self])
}

/// Runs a subcommand body; storage errors become one line on stderr and exit status 1.
func imgReportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as StorageError {
        imgFail(e.description)
    }
}

func imgFail(_ message: String, code: Int32 = 1) -> Never {
    var line = "rivet img: " + message.split(whereSeparator: { $0 == "\n" }).joined(separator: " ") + "\n"
    line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    exit(code)
}

func imgParseFormat(_ s: String?, _ what: String) -> DiskFormat? {
    guard let s else { return nil }
    guard let f = DiskFormat(rawValue: s) else { imgFail("unknown \(what) format '\(s)' (raw or qcow2)") }
    return f
}

/// Parses `-o key=value,key=value` (cluster_size, refcount_bits; backing_file/backing_fmt too).
func imgParseCreateOptions(_ list: [String], into o: inout Qcow2CreateOptions) {
    for item in list.flatMap({ $0.split(separator: ",") }) {
        let kv = item.split(separator: "=", maxSplits: 1).map(String.init)
        guard kv.count == 2 else { imgFail("invalid option '\(item)' (expected key=value)") }
        switch kv[0] {
        case "cluster_size":
            guard let v = imgParseSize(kv[1]), v <= 2 << 20 else { imgFail("invalid cluster_size '\(kv[1])'") }
            o.clusterSize = Int(v)
        case "refcount_bits":
            guard let v = Int(kv[1]) else { imgFail("invalid refcount_bits '\(kv[1])'") }
            o.refcountBits = v
        case "backing_file": o.backingFile = kv[1]
        case "backing_fmt": o.backingFormat = imgParseFormat(kv[1], "backing")
        case "compat":
            guard kv[1] == "1.1" || kv[1] == "v3" else { imgFail("only compat=1.1 images can be created") }
        default: imgFail("unsupported option '\(kv[0])'")
        }
    }
}

struct ImgCreate: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a new image.")
    @Option(name: .short, help: "Format: qcow2 or raw.") var f: String = "raw"
    @Option(name: .short, help: "Backing file (qcow2 only).") var b: String?
    @Option(name: .customShort("F"), help: "Backing file format.") var backingFormat: String?
    @Option(name: .short, help: "Options: cluster_size=N, refcount_bits=N.") var o: [String] = []
    @Argument var file: String
    @Argument var size: String?

    func run() throws {
        try imgReportingErrors {
            let fmt = imgParseFormat(f, "image")!
            var opts = Qcow2CreateOptions()
            imgParseCreateOptions(o, into: &opts)
            if let b { opts.backingFile = b }
            if let backingFormat { opts.backingFormat = imgParseFormat(backingFormat, "backing") }
            var virtualSize: UInt64? = nil
            if let size {
                guard let v = imgParseSize(size) else {
                    imgFail("invalid size '\(size)' (a number with an optional k, M, G, T, P or E suffix, below 8 EiB)")
                }
                virtualSize = v
            }
            if let backing = opts.backingFile {
                guard fmt == .qcow2 else { imgFail("\(file): backing files need the qcow2 format") }
                // Like qemu-img: the backing file must open (relative to the new image), and gives the default size.
                let resolved = resolveBackingPath(backing, relativeTo: file)
                if let a = FileIdentity(path: file), a == FileIdentity(path: resolved) {
                    imgFail("\(file): the backing file \(backing) is this image itself (creating it would destroy its data)")
                }
                let base = try openDisk(path: resolved, format: opts.backingFormat, readOnly: true)
                try refuseBackingLoop(image: file, backingPath: resolved, backing: base)
                if opts.backingFormat == nil { opts.backingFormat = try probeFormat(path: resolved) }
                if virtualSize == nil { virtualSize = base.size }
            }
            guard let vs = virtualSize else { imgFail("\(file): image size required") }
            guard vs <= maxImageSize else { imgFail("\(file): size \(vs) is too large (must be below 8 EiB)") }
            switch fmt {
            case .raw: try RawDisk.create(path: file, size: vs)
            case .qcow2: try Qcow2Disk.create(path: file, size: vs, options: opts)
            }
            var line = "Formatting '\(file)', fmt=\(fmt.rawValue)"
            if fmt == .qcow2 { line += " cluster_size=\(opts.clusterSize)" }
            line += " size=\(vs)"
            if let bf = opts.backingFile { line += " backing_file=\(bf)" }
            if let bfmt = opts.backingFormat { line += " backing_fmt=\(bfmt.rawValue)" }
            print(line)
        }
    }
}

struct ImgSnapshot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Create a new qcow2 overlay whose backing file is FILE (new writes go to the overlay).")
    @Option(name: .short, help: "Cluster size of the overlay.") var o: [String] = []
    @Argument var file: String
    @Argument var newOverlay: String

    func run() throws {
        try imgReportingErrors {
            var opts = Qcow2CreateOptions()
            imgParseCreateOptions(o, into: &opts)
            try createOverlay(basePath: file, overlayPath: newOverlay, clusterSize: opts.clusterSize)
            print("Created overlay '\(newOverlay)' on top of '\(file)'")
        }
    }
}

struct ImgCommit: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "commit", abstract: "Merge an overlay into its backing file.")
    @Option(name: .short, help: "Format of FILE.") var f: String?
    @Flag(name: .short, help: "Keep the overlay's data (do not empty it).") var d = false
    @Argument var file: String

    func run() throws {
        try imgReportingErrors {
            // The overlay is opened without its chain: the backing file is opened once, for writing, below.
            guard let top = try openImage(path: file, format: imgParseFormat(f, "image"), readOnly: false, openBacking: false) as? Qcow2Disk else {
                imgFail("\(file): commit needs a qcow2 image")
            }
            guard let backingPath = top.backingPath else { imgFail("\(file): image has no backing file") }
            if let a = FileIdentity(path: file), a == FileIdentity(path: backingPath) {
                imgFail("\(file): the backing file \(backingPath) is this image itself")
            }
            let backingFmt = try DiskFormat(rawValue: top.header.backingFormat ?? "") ?? probeFormat(path: backingPath)
            let base = try openDisk(path: backingPath, format: backingFmt, readOnly: false)
            let chunk = 1 << 20
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
            defer { buf.deallocate() }
            var pos: UInt64 = 0
            while pos < top.size {
                let ext = try top.extent(at: pos, maxLength: UInt64(chunk))
                if ext.kind != .unallocated {
                    guard pos + ext.length <= base.size else {
                        imgFail("\(file): overlay data at offset \(pos) lies beyond the end of the backing file")
                    }
                    let n = Int(ext.length)
                    let part = UnsafeMutableRawBufferPointer(rebasing: buf[0..<n])
                    try top.read(at: pos, into: part)
                    try base.write(at: pos, from: UnsafeRawBufferPointer(part))
                }
                pos += ext.length
            }
            try base.flush()
            if !d {
                try top.unmap(from: 0, length: top.size, fallThrough: true)
            }
            try top.close()
            print("Image committed.")
        }
    }
}

struct ImgRebase: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rebase", abstract: "Change the backing file of an image.")
    @Option(name: .short, help: "Format of FILE.") var f: String?
    @Option(name: .short, help: "New backing file (\"\" for none).") var b: String
    @Option(name: .customShort("F"), help: "New backing file format.") var backingFormat: String?
    @Flag(name: .short, help: "Unsafe: only rewrite the header, copy no data.") var u = false
    @Argument var file: String

    func run() throws {
        try imgReportingErrors {
            guard let top = try openImage(path: file, format: imgParseFormat(f, "image"), readOnly: false, openBacking: !u) as? Qcow2Disk else {
                imgFail("\(file): rebase needs a qcow2 image")
            }
            let newName: String? = b.isEmpty ? nil : b
            var newFormat = imgParseFormat(backingFormat, "backing")
            var newBase: BlockDevice? = nil
            if let newName {
                let resolved = resolveBackingPath(newName, relativeTo: file)
                if let a = FileIdentity(path: file), a == FileIdentity(path: resolved) {
                    imgFail("\(file): the new backing file \(newName) is this image itself")
                }
                // Opened even with -u (unless -u names a file that does not exist yet, as qemu-img allows),
                // to refuse a chain that would come back to this image. Force-share: this process holds
                // the image's write lock, and a loop should be named as a loop.
                if !u || newFormat == nil || FileIdentity(path: resolved) != nil {
                    if newFormat == nil { newFormat = try probeFormat(path: resolved) }
                    let opened = try openDisk(path: resolved, format: newFormat, readOnly: true, forceShare: true)
                    try refuseBackingLoop(image: file, backingPath: resolved, backing: opened)
                    newBase = opened
                }
            }
            if !u {
                // Wherever the overlay does not hold data itself, keep what the old chain showed.
                let cs = top.clusterSize
                let old = UnsafeMutableRawBufferPointer.allocate(byteCount: cs, alignment: 4096)
                let new = UnsafeMutableRawBufferPointer.allocate(byteCount: cs, alignment: 4096)
                defer { old.deallocate(); new.deallocate() }
                var pos: UInt64 = 0
                while pos < top.size {
                    let ext = try top.extent(at: pos, maxLength: UInt64(cs))
                    let n = Int(ext.length)
                    if ext.kind == .unallocated {
                        let o = UnsafeMutableRawBufferPointer(rebasing: old[0..<n])
                        let w = UnsafeMutableRawBufferPointer(rebasing: new[0..<n])
                        try top.read(at: pos, into: o)
                        memset(w.baseAddress!, 0, n)
                        if let nb = newBase, pos < nb.size {
                            let k = Int(min(UInt64(n), nb.size - pos))
                            try nb.read(at: pos, into: UnsafeMutableRawBufferPointer(rebasing: new[0..<k]))
                        }
                        if memcmp(o.baseAddress!, w.baseAddress!, n) != 0 {
                            try top.write(at: pos, from: UnsafeRawBufferPointer(o))
                        }
                    }
                    pos += ext.length
                }
            }
            try top.setBacking(name: newName, format: newFormat)
            try top.close()
        }
    }
}

struct ImgConvert: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "convert", abstract: "Copy an image (whole chain) into a new raw or qcow2 image, skipping zeros.")
    @Option(name: .short, help: "Source format.") var f: String?
    @Option(name: .customShort("O"), help: "Output format (raw or qcow2).") var outputFormat: String = "raw"
    @Option(name: .short, help: "Output options: cluster_size=N.") var o: [String] = []
    @Flag(name: .short, help: "Show progress.") var p = false
    @Flag(name: .customShort("U"), help: "Force share: read without refusing a writer that has the image open (the image may change underneath).") var forceShare = false
    @Argument var source: String
    @Argument var destination: String

    func run() throws {
        try imgReportingErrors {
            let src = try openDisk(path: source, format: imgParseFormat(f, "source"), readOnly: true, forceShare: forceShare)
            let outFmt = imgParseFormat(outputFormat, "output")!
            // Creating the destination truncates it: it must not be any file the source reads.
            var dstStat = stat()
            if stat(destination, &dstStat) == 0 {
                var layer = src as? ImageLayer
                while let l = layer {
                    var st = stat()
                    if stat(l.path, &st) == 0 && st.st_dev == dstStat.st_dev && st.st_ino == dstStat.st_ino {
                        imgFail("\(destination): is part of the source image chain (\(l.path))")
                    }
                    layer = l.backingDevice as? ImageLayer
                }
            }
            var opts = Qcow2CreateOptions()
            imgParseCreateOptions(o, into: &opts)
            switch outFmt {
            case .raw: try RawDisk.create(path: destination, size: src.size)
            case .qcow2: try Qcow2Disk.create(path: destination, size: src.size, options: opts)
            }
            let dst = try openDisk(path: destination, format: outFmt, readOnly: false)
            let chunk = outFmt == .qcow2 ? max(opts.clusterSize, 1 << 20) : 1 << 20
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
            defer { buf.deallocate() }
            var pos: UInt64 = 0
            var lastShown = -1
            func progress() {
                guard p else { return }
                let pct = src.size == 0 ? 10000 : Int(pos * 10000 / src.size)
                if pct == lastShown { return }
                lastShown = pct
                var s = "    (\(pct / 100).\(pct % 100 < 10 ? "0" : "")\(pct % 100)/100%)\r"
                s.withUTF8 { _ = Glibc.write(1, $0.baseAddress, $0.count) }
            }
            progress()
            while pos < src.size {
                let (zero, run) = try imgChainIsZero(src, at: pos, maxLength: UInt64(chunk))
                if zero { pos += run; progress(); continue }
                let n = Int(run)
                let part = UnsafeMutableRawBufferPointer(rebasing: buf[0..<n])
                try src.read(at: pos, into: part)
                // Sparse: write only the 4 KiB pieces that hold a non-zero byte.
                let base = part.baseAddress!
                var k = 0
                while k < n {
                    while k < n && imgIsZero(base + k, min(4096, n - k)) { k += min(4096, n - k) }
                    var stop = k
                    while stop < n && !imgIsZero(base + stop, min(4096, n - stop)) { stop += min(4096, n - stop) }
                    if stop > k {
                        try dst.write(at: pos + UInt64(k), from: UnsafeRawBufferPointer(rebasing: part[k..<stop]))
                    }
                    k = stop
                }
                pos += run
                progress()
            }
            try dst.flush()
            if let q = dst as? Qcow2Disk { try q.close() }
            if p { print("") }
        }
    }
}

func imgIsZero(_ p: UnsafeRawPointer, _ n: Int) -> Bool {
    var i = 0
    while i + 8 <= n {
        if p.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
        i += 8
    }
    while i < n {
        if p.load(fromByteOffset: i, as: UInt8.self) != 0 { return false }
        i += 1
    }
    return true
}

/// Whether [pos, pos+run) reads as zeros from the whole chain's metadata alone, and the run length.
func imgChainIsZero(_ dev: BlockDevice, at pos: UInt64, maxLength: UInt64) throws -> (Bool, UInt64) {
    guard let layer = dev as? ImageLayer else { return (false, min(maxLength, dev.size - pos)) }
    let e = try layer.extent(at: pos, maxLength: maxLength)
    switch e.kind {
    case .zero: return (true, e.length)
    case .data: return (false, e.length)
    case .unallocated:
        guard let b = layer.backingDevice, pos < b.size else { return (true, e.length) }
        let (z, n) = try imgChainIsZero(b, at: pos, maxLength: min(e.length, b.size - pos))
        return (z, n)
    }
}
