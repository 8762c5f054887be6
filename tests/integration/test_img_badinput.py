"""Bad input on the command line: every case ends in one clear line on stderr and a nonzero exit,
never a crash, a hang or a stack trace. (The large mutation fuzzer runs in-process: RivetStorageTests.)"""
import struct

import pytest

import os as _os
import sys as _sys
_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))  # storage_helpers lives beside the tests

from storage_helpers import qemu_img, require_tools, rivet


@pytest.fixture(autouse=True)
def tools():
    require_tools()


def expect_clean_failure(*args, code=None, mention=None):
    p = rivet(*args, check=False, timeout=60)
    assert p.returncode != 0, f"{args}: unexpectedly succeeded: {p.stdout}"
    assert 0 < p.returncode < 128, f"{args}: died with {p.returncode}: {p.stderr}"
    if code is not None:
        assert p.returncode == code
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"{args}: expected one stderr line, got: {p.stderr!r}"
    assert lines[0].startswith("rivet img: "), lines[0]
    if mention:
        assert mention in lines[0], lines[0]
    return lines[0]


def patch(path, offset, fmt, value):
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, value)
    path.write_bytes(bytes(data))


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "img.qcow2"
    qemu_img("create", "-f", "qcow2", p, "8M")
    return p


def test_missing_file(tmp_path):
    expect_clean_failure("info", tmp_path / "nope.qcow2", mention="nope.qcow2")


def test_truncated_header(tmp_path, image):
    image.write_bytes(image.read_bytes()[:50])
    expect_clean_failure("info", "-f", "qcow2", image, mention=str(image))


def test_cluster_bits_out_of_range(image):
    patch(image, 20, ">I", 30)
    expect_clean_failure("info", image, mention="cluster size")


def test_refcount_order_out_of_range(image):
    patch(image, 96, ">I", 7)
    expect_clean_failure("info", image, mention="refcount order")


def test_huge_l1_size(image):
    patch(image, 36, ">I", 0xFFFFFFFF)
    expect_clean_failure("info", image, mention="L1")


def test_huge_virtual_size(image):
    patch(image, 24, ">Q", 1 << 62)
    expect_clean_failure("info", image)


def test_l1_offset_past_eof(image):
    patch(image, 40, ">Q", 1 << 40)
    expect_clean_failure("convert", "-O", "raw", image, str(image) + ".raw", mention="L1")


def test_l2_offset_past_eof(tmp_path):
    img = tmp_path / "d.qcow2"
    qemu_img("create", "-f", "qcow2", img, "8M")
    import subprocess
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 1 0 4096", str(img)], check=True, capture_output=True)
    data = img.read_bytes()
    l1_offset = struct.unpack_from(">Q", data, 40)[0]
    patch(img, l1_offset, ">Q", (1 << 63) | (1 << 45))
    expect_clean_failure("convert", "-O", "raw", img, tmp_path / "o.raw", mention="L2")


def test_backing_file_missing(tmp_path):
    base = tmp_path / "base.qcow2"
    qemu_img("create", "-f", "qcow2", base, "1M")
    ov = tmp_path / "ov.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", ov)
    base.unlink()
    expect_clean_failure("convert", "-O", "raw", ov, tmp_path / "o.raw", mention="base.qcow2")


def test_backing_file_loop(tmp_path):
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    qemu_img("create", "-f", "qcow2", a, "1M")
    qemu_img("create", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b)
    qemu_img("rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", a)
    expect_clean_failure("convert", "-O", "raw", b, tmp_path / "o.raw", mention="loop")
    expect_clean_failure("info", "--backing-chain", b, mention="loop")


def test_self_backing(tmp_path):
    a = tmp_path / "a.qcow2"
    qemu_img("create", "-f", "qcow2", a, "1M")
    qemu_img("rebase", "-u", "-b", "a.qcow2", "-F", "qcow2", a)
    expect_clean_failure("map", a, mention="loop")


def test_unknown_incompatible_feature(image):
    patch(image, 72, ">Q", 1 << 40)
    expect_clean_failure("info", image, mention="incompatible")


def test_check_raw_is_unsupported(tmp_path):
    r = tmp_path / "r.raw"
    r.write_bytes(bytes(4096))
    expect_clean_failure("check", r, code=63)


def test_check_reports_corruption_with_exit_2(tmp_path):
    img = tmp_path / "c.qcow2"
    qemu_img("create", "-f", "qcow2", img, "8M")
    import subprocess
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 1 0 65536", str(img)], check=True, capture_output=True)
    data = bytearray(img.read_bytes())
    rt = struct.unpack_from(">Q", data, 48)[0]
    block = struct.unpack_from(">Q", data, rt)[0]
    # Zero the refcount of the data cluster (the last one written): a referenced cluster with refcount 0.
    n_clusters = len(data) // 65536
    struct.pack_into(">H", data, block + 2 * (n_clusters - 1), 0)
    img.write_bytes(bytes(data))
    mine = rivet("check", img, check=False)
    theirs = qemu_img("check", img, check=False)
    assert theirs.returncode == 2 and mine.returncode == 2, (mine.stdout, theirs.stdout)


def test_check_reports_leaks_with_exit_3_and_repairs(tmp_path):
    img = tmp_path / "l.qcow2"
    qemu_img("create", "-f", "qcow2", img, "8M")
    data = bytearray(img.read_bytes())
    rt = struct.unpack_from(">Q", data, 48)[0]
    block = struct.unpack_from(">Q", data, rt)[0]
    struct.pack_into(">H", data, block + 2 * 10, 1)      # cluster 10: counted, never used
    data += bytes(11 * 65536 - len(data))
    img.write_bytes(bytes(data))
    assert qemu_img("check", img, check=False).returncode == 3
    p = rivet("check", img, check=False)
    assert p.returncode == 3 and "Leaked cluster 10" in p.stdout
    assert rivet("check", "-r", "leaks", img, check=False).returncode == 0
    assert qemu_img("check", img, check=False).returncode == 0


def test_bad_arguments(tmp_path):
    expect_clean_failure("create", "-f", "qcow2", tmp_path / "x.qcow2", "12Q")
    expect_clean_failure("create", "-f", "qcow2", "-o", "cluster_size=3000", tmp_path / "y.qcow2", "1M", mention="cluster size")
    expect_clean_failure("create", "-f", "vmdk", tmp_path / "z", "1M", mention="vmdk")


def test_internal_snapshots_readable_but_not_writable(tmp_path):
    img = tmp_path / "s.qcow2"
    qemu_img("create", "-f", "qcow2", img, "8M")
    import subprocess
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 1 0 1M", str(img)], check=True, capture_output=True)
    qemu_img("snapshot", "-c", "s1", img)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", "write -P 2 0 64k", str(img)], check=True, capture_output=True)
    assert rivet("check", img).returncode == 0
    out = tmp_path / "o.raw"
    rivet("convert", "-O", "raw", img, out)
    qemu_img("compare", "-f", "qcow2", "-F", "raw", img, out)
    expect_clean_failure("commit", img, mention="read-only")


def test_convert_refuses_to_overwrite_its_source(tmp_path):
    base = tmp_path / "base.qcow2"
    qemu_img("create", "-f", "qcow2", base, "1M")
    ov = tmp_path / "ov.qcow2"
    qemu_img("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", ov)
    before = base.read_bytes()
    expect_clean_failure("convert", "-O", "raw", ov, base, mention="source image chain")
    assert base.read_bytes() == before
