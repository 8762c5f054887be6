"""`rivet img check` agrees with the rest of rivet and with qemu-img check.

Each image is made by qemu-img and then broken one way. The verdicts must match qemu-img check's:
clean (0) with clean, leaks only (3) with leaks only, and "broken" (qemu-img: 2 corrupt or 1 cannot open)
with corrupt (2) or unsupported (63). And anything `rivet img info`, `convert` or `map` refuses to open,
`check` must not call clean. Extended-L2 images are refused as unsupported by every command alike."""
import struct
import subprocess

import pytest

from storage_helpers import qemu_img, require_tools, rivet


@pytest.fixture(autouse=True)
def tools():
    require_tools()


def be(path, offset, fmt, value=None):
    with open(path, "r+b") as f:
        f.seek(offset)
        if value is None:
            return struct.unpack(">" + fmt, f.read(struct.calcsize(fmt)))[0]
        f.write(struct.pack(">" + fmt, value))


def l2_of(path):
    return be(path, be(path, 40, "Q"), "Q") & 0x00FFFFFFFFFFFE00


def refblock_of(path):
    return be(path, be(path, 48, "Q"), "Q")


def make(tmp_path, name, *opts, data=True):
    p = tmp_path / f"{name}.qcow2"
    qemu_img("create", "-f", "qcow2", *opts, p, "8M")
    if data:
        assert subprocess.run(["qemu-io", "-c", "write -P 0x33 0 256k", str(p)], capture_output=True).returncode == 0
    return p


def breaker(case):
    def unknown_feature(p): be(p, 72, "Q", 1 << 15)
    def l1_too_small(p): be(p, 36, "I", 0)
    def l1_past_eof(p): be(p, 40, "Q", 1 << 40)
    def bad_magic(p): be(p, 0, "I", 0x12345678)
    def l2_entry_past_eof(p): be(p, l2_of(p) + 8, "Q", (1 << 63) | (1 << 40))
    def l2_reserved_bits(p): be(p, l2_of(p) + 8, "Q", be(p, l2_of(p) + 8, "Q") | 0x100)
    def refcount_too_low(p): be(p, refblock_of(p) + 2 * 5, "H", 0)   # 16-bit refcounts; cluster 5 is data
    def leak(p):
        be(p, refblock_of(p) + 2 * 60, "H", 1)                        # a cluster nothing uses
        with open(p, "r+b") as f:
            f.truncate(61 * 65536)
    def nothing(p): pass
    return locals()[case]


CASES = ["nothing", "unknown_feature", "l1_too_small", "l1_past_eof", "bad_magic", "l2_entry_past_eof",
         "l2_reserved_bits", "refcount_too_low", "leak"]


def verdict_qemu(code):
    return {0: "clean", 3: "leaks", 2: "broken", 1: "broken", 63: "broken"}.get(code, f"qemu-img exit {code}")


def verdict_rivet(code):
    return {0: "clean", 3: "leaks", 2: "broken", 63: "broken"}.get(code, f"rivet exit {code}")


@pytest.mark.parametrize("case", CASES)
def test_check_verdict_matches_qemu_img(tmp_path, case):
    p = make(tmp_path, case)
    breaker(case)(p)
    q = qemu_img("check", p, check=False)
    r = rivet("check", p, check=False)
    assert verdict_rivet(r.returncode) == verdict_qemu(q.returncode), (
        f"{case}: rivet check exit {r.returncode}, qemu-img check exit {q.returncode}\n"
        f"rivet: {r.stdout}{r.stderr}\nqemu-img: {q.stdout}{q.stderr}")
    if r.returncode in (2, 63):
        assert r.stderr.strip() or "ERROR" in r.stdout, r.stdout + r.stderr
    # Whatever the other commands refuse to open, check must not call clean.
    refused = [c for c in (["info", p], ["map", p], ["convert", "-O", "raw", p, tmp_path / "out.raw"])
               if rivet(*c, check=False).returncode != 0]
    if refused:
        assert r.returncode in (2, 63), f"{case}: {refused[0][0]} refuses the image but check exits {r.returncode}"


def test_extended_l2_is_unsupported_by_every_command(tmp_path):
    p = make(tmp_path, "subclusters", "-o", "extended_l2=on")
    assert qemu_img("check", p).returncode == 0   # a valid image
    r = rivet("check", p, check=False)
    assert r.returncode == 63 and "not supported" in r.stderr, r.stdout + r.stderr
    for c in (["info", p], ["map", p], ["convert", "-O", "raw", p, tmp_path / "out.raw"], ["commit", p],
              ["rebase", "-u", "-b", "", p]):
        out = rivet(*c, check=False)
        assert out.returncode == 1 and "extended L2 entries are not supported" in out.stderr, (c, out.stderr)
