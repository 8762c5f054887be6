import ArgumentParser
import RivetStorage
#if canImport(Glibc)
import Glibc
#endif

/// A ImgJSON value that keeps key order, printed like qemu-img (4-space indent).
indirect enum ImgJSON {
    case object([(String, ImgJSON)])
    case array([ImgJSON])
    case string(String)
    case int(UInt64)
    case bool(Bool)

    func render(_ indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent + 4)
        let end = String(repeating: " ", count: indent)
        switch self {
        case .object(let kv):
            if kv.isEmpty { return "{}" }
            return "{\n" + kv.map { pad + ImgJSON.quote($0.0) + ": " + $0.1.render(indent + 4) }.joined(separator: ",\n") + "\n" + end + "}"
        case .array(let a):
            if a.isEmpty { return "[]" }
            return "[\n" + a.map { pad + $0.render(indent + 4) }.joined(separator: ",\n") + "\n" + end + "]"
        case .string(let s): return ImgJSON.quote(s)
        case .int(let v): return String(v)
        case .bool(let b): return b ? "true" : "false"
        }
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 { out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16) } else { out.unicodeScalars.append(u) }
            }
        }
        return out + "\""
    }
}

/// Fixed-point text with `places` decimals (no Foundation formatting).
func imgFixed(_ x: Double, _ places: Int) -> String {
    var scale = 1.0
    for _ in 0..<places { scale *= 10 }
    let v = UInt64((x * scale).rounded())
    let whole = v / UInt64(scale)
    if places == 0 { return String(whole) }
    var frac = String(v % UInt64(scale))
    while frac.count < places { frac = "0" + frac }
    return "\(whole).\(frac)"
}

/// Sizes as qemu-img prints them: up to three significant digits and a binary unit.
func imgHumanSize(_ v: UInt64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var x = Double(v)
    var i = 0
    while x >= 1000 && i < units.count - 1 { x /= 1024; i += 1 }
    if i == 0 { return "\(v) B" }
    var s = imgFixed(x, x >= 100 ? 0 : (x >= 10 ? 1 : 2))
    if s.contains(".") { while s.hasSuffix("0") { s.removeLast() }; if s.hasSuffix(".") { s.removeLast() } }
    return "\(s) \(units[i])"
}

struct ImgInfo: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show an image's format, sizes and backing file.")
    @Option(name: .short, help: "Image format.") var f: String?
    @Flag(name: .customLong("backing-chain"), help: "Show every image of the backing chain.") var backingChain = false
    @Option(name: .customLong("output"), help: "human or json.") var output: String = "human"
    @Flag(name: .customShort("U"), help: "Force share: read without refusing a writer that has the image open (the image may change underneath).") var forceShare = false
    @Argument var file: String

    func run() throws {
        try imgReportingErrors {
            guard output == "human" || output == "json" else { imgFail("--output must be human or json") }
            var infos: [[(String, ImgJSON)]] = []
            var path = file
            var fmt = imgParseFormat(f, "image")
            var seen = Set<String>()
            while true {
                if seen.contains(path) || seen.count > 256 { imgFail("\(path): backing file loop") }
                seen.insert(path)
                // As qemu-img: a raw file's info needs no consistent view of its data, so it is read without
                // refusing a writer; qcow2 metadata must not change underneath unless -U says so.
                let layerFormat = try fmt ?? probeFormat(path: path)
                let img = try openImage(path: path, format: layerFormat, readOnly: true, openBacking: false,
                                        forceShare: forceShare || layerFormat == .raw)
                infos.append(describe(img))
                guard backingChain, let q = img as? Qcow2Disk, let next = q.backingPath else { break }
                fmt = q.header.backingFormat.flatMap { DiskFormat(rawValue: $0) }
                path = next
            }
            if output == "json" {
                let value = backingChain ? ImgJSON.array(infos.map { .object($0) }) : .object(infos[0])
                print(value.render())
            } else {
                print(infos.map(renderHuman).joined(separator: "\n\n"))
            }
        }
    }

    func describe(_ img: ImageLayer) -> [(String, ImgJSON)] {
        var kv: [(String, ImgJSON)] = [("virtual-size", .int(img.size)), ("filename", .string(img.path))]
        if let q = img as? Qcow2Disk {
            kv.append(("cluster-size", .int(UInt64(q.clusterSize))))
            kv.append(("format", .string("qcow2")))
            kv.append(("actual-size", .int(q.diskUsage)))
            let h = q.header
            var data: [(String, ImgJSON)] = [("compat", .string(h.version >= 3 ? "1.1" : "0.10")),
                                          ("compression-type", .string("zlib"))]
            if h.version >= 3 {
                data.append(("lazy-refcounts", .bool(h.compatibleFeatures & 1 != 0)))
            }
            data.append(("refcount-bits", .int(1 << UInt64(h.refcountOrder))))
            if h.version >= 3 {
                data.append(("corrupt", .bool(h.incompatibleFeatures & 2 != 0)))
                data.append(("extended-l2", .bool(false)))
            }
            kv.append(("format-specific", .object([("type", .string("qcow2")), ("data", .object(data))])))
            if let b = h.backingFile {
                kv.append(("full-backing-filename", .string(q.backingPath ?? b)))
                kv.append(("backing-filename", .string(b)))
                if let bf = h.backingFormat { kv.append(("backing-filename-format", .string(bf))) }
            }
            kv.append(("dirty-flag", .bool(h.incompatibleFeatures & 1 != 0)))
        } else if let r = img as? RawDisk {
            kv.append(("format", .string("raw")))
            var st = stat()
            kv.append(("actual-size", .int(stat(r.path, &st) == 0 ? UInt64(st.st_blocks) * 512 : 0)))
            kv.append(("dirty-flag", .bool(false)))
        }
        return kv
    }

    func renderHuman(_ kv: [(String, ImgJSON)]) -> String {
        func get(_ k: String) -> ImgJSON? { kv.first { $0.0 == k }?.1 }
        func str(_ k: String) -> String? { if case .string(let s)? = get(k) { return s }; return nil }
        func num(_ k: String) -> UInt64? { if case .int(let v)? = get(k) { return v }; return nil }
        var lines = ["image: \(str("filename") ?? "")", "file format: \(str("format") ?? "")"]
        let vs = num("virtual-size") ?? 0
        lines.append("virtual size: \(imgHumanSize(vs)) (\(vs) bytes)")
        lines.append("disk size: \(imgHumanSize(num("actual-size") ?? 0))")
        if let cs = num("cluster-size") { lines.append("cluster_size: \(cs)") }
        if let b = str("backing-filename") {
            let full = str("full-backing-filename") ?? b
            lines.append(full == b ? "backing file: \(b)" : "backing file: \(b) (actual path: \(full))")
            if let bf = str("backing-filename-format") { lines.append("backing file format: \(bf)") }
        }
        if case .object(let fs)? = get("format-specific"), case .object(let data)? = fs.first(where: { $0.0 == "data" })?.1 {
            lines.append("Format specific information:")
            for (k, v) in data {
                let value: String
                switch v {
                case .string(let s): value = s
                case .int(let i): value = String(i)
                case .bool(let b): value = b ? "true" : "false"
                default: value = ""
                }
                lines.append("    \(String(k.map { $0 == "-" ? " " : $0 })): \(value)")
            }
        }
        return lines.joined(separator: "\n")
    }
}

struct ImgCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a qcow2 image's metadata (exit 0 clean, 1 check failed, 2 corrupt, 3 leaks only, 63 not supported).")
    @Option(name: .short, help: "Image format.") var f: String?
    @Option(name: .short, help: "Repair: leaks or all (repairs leaked clusters).") var r: String?
    @Option(name: .customLong("output"), help: "human or json.") var output: String = "human"
    @Flag(name: .customShort("U"), help: "Force share: read without refusing a writer that has the image open (the image may change underneath).") var forceShare = false
    @Argument var file: String

    func run() throws {
        let fmt: DiskFormat
        do { fmt = try imgParseFormat(f, "image") ?? probeFormat(path: file) } catch let e as StorageError { imgFail(e.description) }
        if fmt == .raw { imgFail("This image format does not support checks", code: 63) }
        if let r, r != "leaks" && r != "all" { imgFail("-r must be leaks or all") }
        if r != nil && forceShare { imgFail("-U (force share) cannot be used with -r (repair writes the image)") }
        // Whatever info, convert or map refuse to open, check refuses too: unsupported features exit 63 (as
        // for raw), a broken header or table layout is corruption (exit 2). Both say why on stderr.
        do {
            _ = try Qcow2Disk(path: file, readOnly: true, openBacking: false, forceShare: true)
        } catch let e as StorageError {
            let text = e.description
            if text.contains("not supported") || text.contains("unsupported") {
                imgFail("\(text) (check cannot examine this image)", code: 63)
            }
            if text.contains("corrupt") || text.contains("invalid qcow2 header") || text.contains("too short") {
                if output == "human" {
                    print("ERROR \(text)\n\n1 errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.")
                }
                imgFail(text, code: 2)
            }
        } catch {
            imgFail("Could not check: \(error)")
        }
        var result: CheckResult
        do {
            result = try Qcow2Disk.check(path: file, repairLeaks: r != nil, forceShare: forceShare)
            if result.repairedLeaks > 0 {
                let before = result
                result = try Qcow2Disk.check(path: file)
                if output == "human" {
                    print("Repairing \(before.repairedLeaks) leaked clusters.\nThe following inconsistencies were found and repaired:\n\n    \(before.repairedLeaks) leaked clusters\n    0 corruptions\n\nDouble checking the fixed image now...")
                }
            }
        } catch let e as StorageError {
            imgFail("Could not check: " + e.description)
        }
        if output == "json" {
            // Key order and the omission of zero counters follow qemu-img's output.
            var kv: [(String, ImgJSON)] = [("image-end-offset", .int(result.imageEndOffset))]
            if result.compressedClusters > 0 { kv.append(("compressed-clusters", .int(result.compressedClusters))) }
            kv += [("total-clusters", .int(result.totalClusters)), ("check-errors", .int(UInt64(result.checkErrors)))]
            if result.leaks > 0 { kv.append(("leaks", .int(UInt64(result.leaks)))) }
            if result.corruptions > 0 { kv.append(("corruptions", .int(UInt64(result.corruptions)))) }
            if result.allocatedClusters > 0 { kv.append(("allocated-clusters", .int(result.allocatedClusters))) }
            kv += [("filename", .string(file)), ("format", .string("qcow2"))]
            if result.fragmentedClusters > 0 { kv.append(("fragmented-clusters", .int(result.fragmentedClusters))) }
            print(ImgJSON.object(kv).render())
        } else {
            for m in result.messages.prefix(1000) { print(m) }
            if result.messages.count > 1000 { print("(\(result.messages.count - 1000) more messages not shown)") }
            if result.corruptions == 0 && result.leaks == 0 { print("No errors were found on the image.") }
            if result.corruptions > 0 {
                print("\n\(result.corruptions) errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.")
            }
            if result.leaks > 0 {
                print("\n\(result.leaks) leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.")
            }
            if result.totalClusters > 0 {
                let pct = Double(result.allocatedClusters) * 100 / Double(result.totalClusters)
                let frag = result.allocatedClusters > 0 ? Double(result.fragmentedClusters) * 100 / Double(result.allocatedClusters) : 0
                let comp = result.allocatedClusters > 0 ? Double(result.compressedClusters) * 100 / Double(result.allocatedClusters) : 0
                print("\(result.allocatedClusters)/\(result.totalClusters) = \(imgFixed(pct, 2))% allocated, \(imgFixed(frag, 2))% fragmented, \(imgFixed(comp, 2))% compressed clusters")
            }
            print("Image end offset: \(result.imageEndOffset)")
        }
        if result.exitCode != 0 { throw ExitCode(result.exitCode) }
    }
}

struct ImgMap: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "map", abstract: "Show where each range of the disk's data lives.")
    @Option(name: .short, help: "Image format.") var f: String?
    @Option(name: .customLong("output"), help: "human or json.") var output: String = "human"
    @Flag(name: .customShort("U"), help: "Force share: read without refusing a writer that has the image open (the image may change underneath).") var forceShare = false
    @Argument var file: String

    struct Run { var start: UInt64; var length: UInt64; var depth: Int; var present: Bool; var zero: Bool; var data: Bool; var offset: UInt64?; var file: String }

    func run() throws {
        try imgReportingErrors {
            guard output == "human" || output == "json" else { imgFail("--output must be human or json") }
            guard let top = try openImage(path: file, format: imgParseFormat(f, "image"), readOnly: true, forceShare: forceShare) as ImageLayer? else { return }
            var runs: [Run] = []
            var pos: UInt64 = 0
            while pos < top.size {
                // Walk down the chain until some layer says something about pos.
                var layer: ImageLayer = top
                var depth = 0
                var limit = top.size - pos
                var run: Run
                while true {
                    let e = try layer.extent(at: pos, maxLength: limit)
                    limit = e.length
                    if e.kind == .unallocated, let b = layer.backingDevice as? ImageLayer, pos < b.size {
                        layer = b; depth += 1; limit = min(limit, b.size - pos); continue
                    }
                    let beyond = e.kind == .unallocated && layer.backingDevice != nil
                    if e.kind == .unallocated && !beyond {
                        run = Run(start: pos, length: limit, depth: depth, present: false, zero: true, data: false, offset: nil, file: layer.path)
                    } else if beyond {
                        run = Run(start: pos, length: limit, depth: depth + 1, present: false, zero: true, data: false, offset: nil, file: layer.path)
                    } else {
                        run = Run(start: pos, length: limit, depth: depth, present: true, zero: e.kind == .zero,
                                  data: e.kind == .data, offset: e.hostOffset, file: layer.path)
                    }
                    break
                }
                if var last = runs.last, last.depth == run.depth, last.present == run.present, last.zero == run.zero,
                   last.data == run.data, last.file == run.file,
                   (last.offset == nil && run.offset == nil) || (last.offset.map { $0 + last.length } == run.offset) {
                    last.length += run.length
                    runs[runs.count - 1] = last
                } else {
                    runs.append(run)
                }
                pos += run.length
            }
            if output == "json" {
                let arr = runs.map { r -> ImgJSON in
                    var kv: [(String, ImgJSON)] = [("start", .int(r.start)), ("length", .int(r.length)), ("depth", .int(UInt64(r.depth))),
                                                ("present", .bool(r.present)), ("zero", .bool(r.zero)), ("data", .bool(r.data))]
                    if let o = r.offset { kv.append(("offset", .int(o))) }
                    return .object(kv)
                }
                // qemu-img prints one entry per line.
                print("[" + arr.map { compact($0) }.joined(separator: ",\n") + "]")
            } else {
                print(pad("Offset") + pad("Length") + pad("Mapped to") + "File")
                for r in runs where r.data {
                    print(pad(hexc(r.start)) + pad(hexc(r.length)) + pad(r.offset.map(hexc) ?? "-") + r.file)
                }
            }
        }
    }

    func pad(_ s: String) -> String { s.count >= 16 ? s + " " : s + String(repeating: " ", count: 16 - s.count) }
    func hexc(_ v: UInt64) -> String { v == 0 ? "0" : "0x" + String(v, radix: 16) }
    func compact(_ j: ImgJSON) -> String {
        guard case .object(let kv) = j else { return j.render() }
        return "{ " + kv.map { "\"\($0.0)\": \($0.1.render())" }.joined(separator: ", ") + "}"
    }
}
