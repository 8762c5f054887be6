"""rivet img <-> qemu-img interoperability: images rivet writes pass qemu-img check/compare, and images
qemu-img writes (several cluster sizes, compressed clusters, chains of 3+) read correctly in rivet."""
import json
import os

import pytest

import os as _os
import sys as _sys
_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))  # storage_helpers lives beside the tests

from storage_helpers import (qemu_check, qemu_img, qemu_io, random_data, read_via_rivet, require_tools,
                             rivet)


@pytest.fixture(autouse=True)
def tools():
    require_tools()


@pytest.mark.parametrize("cluster", [512, 4096, 65536, 2 << 20])
def test_rivet_convert_to_qcow2_passes_qemu_check_and_compare(tmp_path, cluster):
    data = bytearray(random_data(6 << 20, seed=cluster))
    data[2 << 20:4 << 20] = bytes(2 << 20)       # an aligned hole for every cluster size
    data = bytes(data)
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    dst = tmp_path / "dst.qcow2"
    rivet("convert", "-O", "qcow2", "-o", f"cluster_size={cluster}", src, dst)
    code, report = qemu_check(dst)
    assert code == 0 and report.get("corruptions", 0) == 0 and report.get("leaks", 0) == 0, report
    qemu_img("compare", "-f", "raw", "-F", "qcow2", src, dst)
    info = json.loads(qemu_img("info", "--output", "json", dst).stdout)
    assert info["cluster-size"] == cluster and info["virtual-size"] == len(data)
    # Sparse: all-zero chunks must not be allocated.
    mapping = json.loads(qemu_img("map", "--output", "json", dst).stdout)
    data_bytes = sum(m["length"] for m in mapping if m["data"])
    assert data_bytes <= len(data) - (2 << 20)


@pytest.mark.parametrize("cluster", [512, 4096, 65536, 1 << 20])
def test_qemu_images_read_correctly(tmp_path, cluster):
    data = random_data(2 << 20, seed=100 + cluster)
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    img = tmp_path / "q.qcow2"
    qemu_img("convert", "-O", "qcow2", "-o", f"cluster_size={cluster}", src, img)
    assert read_via_rivet(tmp_path, img) == data


@pytest.mark.parametrize("cluster", [4096, 65536])
def test_qemu_compressed_clusters_read_correctly(tmp_path, cluster):
    # Compressible but not trivial data: text-like runs plus random parts.
    import random
    rng = random.Random(cluster)
    words = [bytes(rng.choice(b"abcdefghij ") for _ in range(rng.randint(2, 9))) for _ in range(64)]
    buf = bytearray()
    while len(buf) < (2 << 20):
        buf += rng.choice(words)
    data = bytes(buf[:2 << 20])
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    img = tmp_path / "c.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", "-o", f"cluster_size={cluster}", src, img)
    info = json.loads(qemu_img("check", "--output", "json", img).stdout)
    assert info.get("compressed-clusters", 0) > 0
    assert read_via_rivet(tmp_path, img) == data
    # Rivet reports the compressed clusters too.
    out = rivet("check", "--output", "json", img).stdout
    assert json.loads(out)["compressed-clusters"] == info["compressed-clusters"]


def test_qemu_chain_of_four_reads_correctly(tmp_path):
    size = 4 << 20
    base = tmp_path / "base.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", "cluster_size=4096", base, size)
    expected = bytearray(size)
    prev, prev_fmt = base, "qcow2"
    layers = [base]
    for level in range(4):
        if level > 0:
            top = tmp_path / f"l{level}.qcow2"
            qemu_img("create", "-f", "qcow2", "-b", prev.name, "-F", prev_fmt, "-o", f"cluster_size={[65536, 512, 16384][level - 1]}", top)
            layers.append(top)
            prev = top
        # Each layer writes patterns at different, partly overlapping places, plus a zeroed range.
        for k in range(6):
            off = (level * 7 + k * 5) * 37 * 1024 % (size - 70000)
            ln = 5000 + 3000 * k
            pat = (level * 16 + k + 1) & 0xff
            qemu_io(prev, "qcow2", f"write -P {pat} {off} {ln}")
            expected[off:off + ln] = bytes([pat]) * ln
        zoff = (level + 1) * 300000
        qemu_io(prev, "qcow2", f"write -z {zoff} 8192")
        expected[zoff:zoff + 8192] = bytes(8192)
    assert read_via_rivet(tmp_path, layers[-1]) == bytes(expected)
    # info --backing-chain lists all four, top first.
    chain = json.loads(rivet("info", "--backing-chain", "--output", "json", layers[-1]).stdout)
    assert [os.path.basename(c["filename"]) for c in chain] == [p.name for p in reversed(layers)]
    qchain = json.loads(qemu_img("info", "--backing-chain", "--output", "json", layers[-1]).stdout)
    for mine, theirs in zip(chain, qchain):
        for key in ("virtual-size", "cluster-size", "format", "backing-filename", "backing-filename-format"):
            assert mine.get(key) == theirs.get(key), key
        assert mine["format-specific"]["data"]["compat"] == theirs["format-specific"]["data"]["compat"]


def test_qemu_raw_backing_and_v2_image(tmp_path):
    data = random_data(1 << 20, seed=7)
    base = tmp_path / "base.raw"
    base.write_bytes(data)
    ov = tmp_path / "ov.qcow2"
    qemu_img("create", "-f", "qcow2", "-o", "compat=0.10", "-b", "base.raw", "-F", "raw", ov)
    qemu_io(ov, "qcow2", "write -P 0x5a 1000 70000")
    expected = bytearray(data)
    expected[1000:71000] = b"\x5a" * 70000
    assert read_via_rivet(tmp_path, ov) == bytes(expected)


def test_snapshot_overlays_keep_base_identical(tmp_path):
    """Overlay chain made by rivet: writes land in the top, lower images stay byte-identical."""
    base = tmp_path / "base.qcow2"
    data = random_data(2 << 20, seed=11)
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    rivet("convert", "-O", "qcow2", src, base)
    base_bytes = base.read_bytes()
    s1 = tmp_path / "s1.qcow2"
    s2 = tmp_path / "s2.qcow2"
    rivet("snapshot", base, s1)
    # Write into s1 with qemu-io (as a guest would), then stack s2 and write more.
    qemu_io(s1, "qcow2", "write -P 0x11 4096 100000")
    rivet("snapshot", s1, s2)
    s1_bytes = s1.read_bytes()
    qemu_io(s2, "qcow2", "write -P 0x22 50000 10000")
    expected = bytearray(data)
    expected[4096:104096] = b"\x11" * 100000
    expected[50000:60000] = b"\x22" * 10000
    assert read_via_rivet(tmp_path, s2) == bytes(expected)
    assert base.read_bytes() == base_bytes and s1.read_bytes() == s1_bytes
    info = json.loads(qemu_img("info", "--output", "json", s2).stdout)
    assert info["backing-filename"] == "s1.qcow2" and info["backing-filename-format"] == "qcow2"
    for img in (base, s1, s2):
        assert qemu_check(img)[0] == 0


def test_create_with_backing_and_options_matches_qemu(tmp_path):
    base = tmp_path / "base.raw"
    rivet("create", "-f", "raw", base, "3M")
    assert base.stat().st_size == 3 << 20
    ov = tmp_path / "ov.qcow2"
    rivet("create", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "-o", "cluster_size=16384", ov)
    info = json.loads(qemu_img("info", "--output", "json", ov).stdout)
    assert info["virtual-size"] == 3 << 20 and info["cluster-size"] == 16384
    assert info["backing-filename"] == "base.raw" and info["backing-filename-format"] == "raw"
    assert qemu_check(ov)[0] == 0
    mine = json.loads(rivet("info", "--output", "json", ov).stdout)
    for key in ("virtual-size", "cluster-size", "format", "backing-filename", "full-backing-filename", "backing-filename-format", "dirty-flag"):
        assert mine[key] == info[key], key
    assert mine["format-specific"] == info["format-specific"]
    # Other refcount widths and big virtual sizes are valid for qemu-img too.
    for bits in (1, 8, 64):
        img = tmp_path / f"r{bits}.qcow2"
        rivet("create", "-f", "qcow2", "-o", f"refcount_bits={bits},cluster_size=4096", img, "40G")
        assert qemu_check(img)[0] == 0


def test_commit_merges_overlay_into_backing(tmp_path):
    data = random_data(2 << 20, seed=21)
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    base = tmp_path / "base.qcow2"
    rivet("convert", "-O", "qcow2", "-o", "cluster_size=4096", src, base)
    ov = tmp_path / "ov.qcow2"
    rivet("snapshot", base, ov)
    qemu_io(ov, "qcow2", "write -P 0x33 12345 300000", "write -z 900000 65536")
    expected = bytearray(data)
    expected[12345:312345] = b"\x33" * 300000
    expected[900000:965536] = bytes(65536)
    rivet("commit", ov)
    assert qemu_check(base)[0] == 0 and qemu_check(ov)[0] == 0
    assert read_via_rivet(tmp_path, base, "b.raw") == bytes(expected)
    assert read_via_rivet(tmp_path, ov, "o.raw") == bytes(expected)
    # The overlay is empty again: everything falls through.
    mapping = json.loads(qemu_img("map", "--output", "json", ov).stdout)
    assert all(m["depth"] >= 1 or not m["present"] for m in mapping), mapping


def test_rebase_safe_and_unsafe(tmp_path):
    a = random_data(1 << 20, seed=31)
    b = random_data(1 << 20, seed=32)
    pa, pb = tmp_path / "a.raw", tmp_path / "b.raw"
    pa.write_bytes(a)
    pb.write_bytes(b)
    ov = tmp_path / "ov.qcow2"
    rivet("create", "-f", "qcow2", "-b", "a.raw", "-F", "raw", ov)
    qemu_io(ov, "qcow2", "write -P 0x44 0 4096")
    expected = b"\x44" * 4096 + a[4096:]
    rivet("rebase", "-b", "b.raw", "-F", "raw", ov)
    info = json.loads(qemu_img("info", "--output", "json", ov).stdout)
    assert info["backing-filename"] == "b.raw"
    assert qemu_check(ov)[0] == 0
    assert read_via_rivet(tmp_path, ov) == expected
    # Unsafe rebase changes only the header; the visible data now comes from the new backing.
    rivet("rebase", "-u", "-b", "a.raw", "-F", "raw", ov)
    got = read_via_rivet(tmp_path, ov, "u.raw")
    assert got[:4096] == b"\x44" * 4096
    # Removing the backing file copies everything in.
    rivet("rebase", "-b", "", ov)
    assert "backing-filename" not in json.loads(qemu_img("info", "--output", "json", ov).stdout)
    assert read_via_rivet(tmp_path, ov, "n.raw") == got


def test_map_agrees_with_qemu(tmp_path):
    base = tmp_path / "base.qcow2"
    qemu_img("create", "-f", "qcow2", base, "4M")
    qemu_io(base, "qcow2", "write -P 1 0 131072", "write -P 2 1048576 65536")
    ov = tmp_path / "ov.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", ov)
    qemu_io(ov, "qcow2", "write -P 3 65536 65536", "write -z 2097152 131072")

    def per_cluster(entries):
        out = {}
        for m in entries:
            for off in range(m["start"], m["start"] + m["length"], 65536):
                out[off] = (m["depth"] if m["present"] else None, m["present"], m["zero"], m["data"])
        return out
    mine = json.loads(rivet("map", "--output", "json", ov).stdout)
    theirs = json.loads(qemu_img("map", "--output", "json", ov).stdout)
    assert per_cluster(mine) == per_cluster(theirs)
    assert mine == theirs            # same merging of runs, same host offsets
    # Human output is line for line qemu-img's (run from the images' directory so file names match).
    import subprocess
    from storage_helpers import RIVET
    ours = subprocess.run([RIVET, "img", "map", ov.name], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    qemus = subprocess.run(["qemu-img", "map", ov.name], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert ours == qemus
    info_ours = subprocess.run([RIVET, "img", "info", ov.name], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    info_qemu = subprocess.run(["qemu-img", "info", ov.name], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert info_ours.splitlines()[:3] == info_qemu.splitlines()[:3]
    assert info_ours.splitlines()[4:] == info_qemu.splitlines()[4:]     # all but "disk size", which can differ by file system rounding


def test_convert_qcow2_to_raw_is_sparse_and_shows_progress(tmp_path):
    src = tmp_path / "s.qcow2"
    qemu_img("create", "-f", "qcow2", src, "64M")
    qemu_io(src, "qcow2", "write -P 7 10485760 65536")
    out = tmp_path / "o.raw"
    p = rivet("convert", "-p", "-O", "raw", src, out)
    assert "100.00/100%" in p.stdout
    assert out.stat().st_size == 64 << 20
    assert out.stat().st_blocks * 512 < 4 << 20
    qemu_img("compare", "-f", "qcow2", "-F", "raw", src, out)


def test_rivet_writes_through_api_then_qemu_check(tmp_path):
    """Random writes and discards through the block layer (the stress mode, run to completion)."""
    img = tmp_path / "w.qcow2"
    rivet("create", "-f", "qcow2", "-o", "cluster_size=4096", img, "16M")
    log = tmp_path / "log"
    rivet("stress", "--seed", 5, "--ops", 3000, "--log", log, img)
    code, report = qemu_check(img)
    assert code == 0, report
    assert rivet("check", img, check=False).returncode == 0


def test_refcount_table_growth_is_valid_for_qemu(tmp_path):
    """512-byte clusters: 20 MiB of data outgrows the first refcount table cluster (8 MiB covered)."""
    data = random_data(20 << 20, seed=77, zero_fraction=0.05)
    src = tmp_path / "src.raw"
    src.write_bytes(data)
    dst = tmp_path / "g.qcow2"
    rivet("convert", "-O", "qcow2", "-o", "cluster_size=512", src, dst)
    code, report = qemu_check(dst)
    assert code == 0, report
    qemu_img("compare", "-f", "raw", "-F", "qcow2", src, dst)


@pytest.mark.parametrize("cluster", [4096, 65536])
def test_rivet_writes_over_qemu_compressed_and_zero_allocated_clusters(tmp_path, cluster):
    """Rivet's write paths on clusters QEMU made: compressed ones (copy-on-write after inflating) and
    allocated zero clusters (written in place). The writes come from `rivet img commit`."""
    import random
    rng = random.Random(cluster + 5)
    text = bytes(rng.choice(b"qwerty \n") for _ in range(4 << 20))
    src = tmp_path / "src.raw"
    src.write_bytes(text)
    base = tmp_path / "base.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", "-o", f"cluster_size={cluster}", src, base)
    # A second, uncompressed region, then zeroed in place (QEMU keeps the clusters allocated: zero flag + offset).
    qemu_io(base, "qcow2", f"write -P 0x77 {2 << 20} {1 << 20}", f"write -z {2 << 20} {1 << 20}")
    expected = bytearray(text)
    expected[2 << 20:3 << 20] = bytes(1 << 20)
    ov = tmp_path / "ov.qcow2"
    rivet("snapshot", base, ov)
    for k in range(12):
        off = rng.randrange(0, (4 << 20) - 20000)
        ln = rng.randrange(1, 20000)
        pat = 0x40 + k
        qemu_io(ov, "qcow2", f"write -P {pat} {off} {ln}")
        expected[off:off + ln] = bytes([pat]) * ln
    # Partial writes into the zero-allocated region.
    qemu_io(ov, "qcow2", f"write -P 0x99 {(2 << 20) + 100} 300")
    expected[(2 << 20) + 100:(2 << 20) + 400] = b"\x99" * 300
    rivet("commit", ov)
    code, report = qemu_check(base)
    assert code == 0, report
    exp = tmp_path / "exp.raw"
    exp.write_bytes(bytes(expected))
    qemu_img("compare", "-f", "raw", "-F", "qcow2", exp, base)


def test_check_json_matches_qemu(tmp_path):
    """Same counters as qemu-img check: allocated, fragmented, compressed, leaks, end offset."""
    import random
    import struct
    rng = random.Random(3)
    text = bytes(rng.choice(b"ab \n") for _ in range(3 << 20))
    (tmp_path / "t.raw").write_bytes(text)
    images = []
    cz = tmp_path / "cz.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096", tmp_path / "t.raw", cz)
    qemu_io(cz, "qcow2", "write -z 0 64k", "write -P 3 1M 8k", "write -z 1M 8k")
    images.append(cz)
    frag = tmp_path / "frag.qcow2"
    qemu_img("create", "-f", "qcow2", frag, "8M")
    qemu_io(frag, "qcow2", *[f"write -P {k} {(k * 7919 * 4096) % (8 << 20)} 4096" for k in range(1, 40)])
    images.append(frag)
    leak = tmp_path / "leak.qcow2"
    qemu_img("create", "-f", "qcow2", leak, "8M")
    qemu_io(leak, "qcow2", "write -P 1 0 64k")
    data = bytearray(leak.read_bytes())
    rt = struct.unpack_from(">Q", data, 48)[0]
    block = struct.unpack_from(">Q", data, rt)[0]
    struct.pack_into(">H", data, block + 2 * 20, 1)
    data += bytes(21 * 65536 - len(data))
    leak.write_bytes(bytes(data))
    images.append(leak)
    for img in images:
        mine = rivet("check", "--output", "json", img, check=False)
        theirs = qemu_img("check", "--output", "json", img, check=False)
        assert mine.returncode == theirs.returncode, img
        assert json.loads(mine.stdout) == json.loads(theirs.stdout), img


def test_deep_chain_reads_and_overlong_chain_is_refused(tmp_path):
    base = tmp_path / "l0.qcow2"
    rivet("create", "-f", "qcow2", "-o", "cluster_size=4096", base, "1M")
    expected = bytearray(1 << 20)
    prev = base
    for level in range(1, 61):
        top = tmp_path / f"l{level}.qcow2"
        rivet("snapshot", "-o", "cluster_size=4096", prev, top)
        if level % 6 == 0:
            off = level * 9000
            qemu_io(top, "qcow2", f"write -P {level} {off} 5000")
            expected[off:off + 5000] = bytes([level]) * 5000
        prev = top
    assert read_via_rivet(tmp_path, prev) == bytes(expected)
    # Past the chain depth limit: a one-line error, not a crash or fd exhaustion.
    for level in range(61, 262):
        top = tmp_path / f"l{level}.qcow2"
        qemu_img("create", "-f", "qcow2", "-u", "-b", prev.name, "-F", "qcow2", top, "1M")
        prev = top
    p = rivet("convert", "-O", "raw", prev, tmp_path / "x.raw", check=False)
    assert p.returncode == 1 and "deeper than" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr
