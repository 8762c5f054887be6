"""`rivet img` commands cannot destroy their inputs, and every number from the command line is range-checked.

- create/rebase/commit refuse a backing file that is the image itself (by device and inode, whatever the
  path: the same name, a symlink, a hard link, a detour through ..) or whose chain comes back to the image;
  the image's bytes are unchanged afterwards.
- Every subcommand (and `rivet run` / `run-elf`) given extreme numbers (0, 2^63, 2^64-1, 2^64, negative,
  garbage) ends with a clean error or a clean success: never a trap or a signal, one line on stderr."""
import hashlib
import os
import subprocess

import pytest

from storage_helpers import RIVET, qemu_img, require_tools, rivet


@pytest.fixture(autouse=True)
def tools():
    require_tools()


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture
def image(tmp_path):
    p = tmp_path / "disk.qcow2"
    qemu_img("create", "-f", "qcow2", p, "4M")
    w = subprocess.run(["qemu-io", "-c", "write -P 0x6b 0 1M", str(p)], capture_output=True, timeout=60)
    assert w.returncode == 0
    return p


def assert_refused(p, *words):
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], p.stderr


def other_names(image):
    """Paths that name the same file as `image` in other ways."""
    d = image.parent
    (d / "sub").mkdir(exist_ok=True)
    link = d / "link.qcow2"
    link.symlink_to(image.name)
    hard = d / "hard.qcow2"
    os.link(image, hard)
    return [str(image), image.name, str(link), str(hard), str(d / "sub" / ".." / image.name)]


def test_create_refuses_the_image_as_its_own_backing_file(image):
    before = digest(image)
    for name in other_names(image):
        p = rivet("create", "-f", "qcow2", "-b", name, "-F", "qcow2", image, check=False)
        assert_refused(p, str(image), "itself")
        assert digest(image) == before, f"create -b {name} changed the image"
    # Also when the target is named through the link and the backing by its own name.
    p = rivet("create", "-f", "qcow2", "-b", image.name, "-F", "qcow2", image.parent / "link.qcow2", check=False)
    assert_refused(p, "itself")
    assert digest(image) == before


def test_create_refuses_a_backing_chain_that_comes_back(image, tmp_path):
    mid = tmp_path / "mid.qcow2"
    rivet("create", "-f", "qcow2", "-b", image.name, "-F", "qcow2", mid)
    before = digest(image)
    p = rivet("create", "-f", "qcow2", "-b", mid.name, "-F", "qcow2", image, check=False)
    assert_refused(p, str(image), "loop")
    assert digest(image) == before


def test_rebase_refuses_self_and_loops(image, tmp_path):
    top = tmp_path / "top.qcow2"
    rivet("create", "-f", "qcow2", "-b", image.name, "-F", "qcow2", top)
    before_top, before_base = digest(top), digest(image)
    for unsafe in ([], ["-u"]):
        assert_refused(rivet("rebase", *unsafe, "-b", top.name, "-F", "qcow2", top, check=False), "itself")
        # image -> top -> image would be a loop.
        assert_refused(rivet("rebase", *unsafe, "-b", top.name, "-F", "qcow2", image, check=False), "loop")
    assert digest(top) == before_top and digest(image) == before_base


def test_commit_refuses_a_self_backed_image(image, tmp_path):
    # qemu-img lets an unsafe rebase make the loop; rivet must refuse to use such an image.
    selfish = tmp_path / "selfish.qcow2"
    qemu_img("create", "-f", "qcow2", selfish, "4M")
    qemu_img("rebase", "-u", "-f", "qcow2", "-b", selfish.name, "-F", "qcow2", selfish)
    before = digest(selfish)
    p = rivet("commit", selfish, check=False)
    assert p.returncode == 1 and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "itself" in p.stderr or "loop" in p.stderr
    assert digest(selfish) == before


def test_convert_refuses_to_overwrite_its_source_through_any_name(image):
    before = digest(image)
    for name in other_names(image):
        if not name.startswith("/"):
            continue  # convert's names are relative to the working directory, not to the image
        p = rivet("convert", "-O", "qcow2", image, name, check=False)
        assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert digest(image) == before


EXTREMES = ["0", "1", "9223372036854775807", "9223372036854775808", "18446744073709551615",
            "18446744073709551616", "-1", "-9223372036854775808", "garbage", "8E", "16E", "1.5G", "0x10", ""]


def command_lines(tmp_path, image, v):
    out = tmp_path / "out.img"
    spin = tmp_path / "spin.bin"
    spin.write_bytes(bytes.fromhex("6f000000"))
    elf = tmp_path / "tiny.elf"
    if not elf.exists():
        elf.write_bytes(b"\x7fELF" + b"\0" * 60)
    img = ["img"]
    return [
        img + ["create", "-f", "raw", out, v],
        img + ["create", "-f", "qcow2", out, v],
        img + ["create", "-f", "qcow2", "-o", f"cluster_size={v}", out, "1M"],
        img + ["create", "-f", "qcow2", "-o", f"refcount_bits={v}", out, "1M"],
        img + ["create", "-f", "qcow2", "-b", image, "-F", "qcow2", out, v],
        img + ["convert", "-O", "qcow2", "-o", f"cluster_size={v}", image, out],
        img + ["snapshot", "-o", f"cluster_size={v}", image, tmp_path / f"snap-{len(v)}-{v[:3]}.qcow2"],
        # Counts of work (bench -c, stress --ops) are only tried where a huge value is not a huge job.
        *([img + ["bench", "-c", v, image], img + ["stress", "--ops", v, "--log", tmp_path / "log", image]]
          if not v.isdigit() or len(v) < 4 else []),
        img + ["bench", "-s", v, "-c", "4", image],
        img + ["bench", "-S", v, "-c", "4", "--pattern", "stride", image],
        img + ["bench", "-w", "--flush-interval", v, "-c", "4", image],
        img + ["bench", "--seed", v, "--pattern", "rand", "-c", "4", image],
        img + ["stress", "--ops", "4", "--max-sectors", v, "--log", tmp_path / "log", image],
        img + ["stress", "--ops", "4", "--discard-percent", v, "--log", tmp_path / "log", image],
        img + ["stress", "--ops", "4", "--seed", v, "--log", tmp_path / "log", image],
        img + ["info", v],
        img + ["check", v],
        img + ["map", v],
        ["run", "--memory", v, "--bios", spin, "--kernel", spin, "--max-instructions", "100"],
        ["run", "--smp", v, "--bios", spin, "--kernel", spin, "--max-instructions", "100"],
        ["run", "--max-instructions", v, "--bios", spin, "--kernel", spin, "--time-limit", "0.2"],
        ["run", "--time-limit", v, "--bios", spin, "--kernel", spin, "--max-instructions", "100"],
        ["run-elf", "--memory", v, elf],
        ["run-elf", "--max-instructions", v, elf],
    ]


@pytest.mark.parametrize("v", EXTREMES)
def test_extreme_numbers_end_cleanly(tmp_path, image, v):
    for argv in command_lines(tmp_path, image, v):
        p = subprocess.run([RIVET, *map(str, argv)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=60)
        what = f"rivet {' '.join(map(str, argv))}: exit {p.returncode}\n{p.stderr[-2000:]}"
        assert p.returncode >= 0, "killed by a signal: " + what
        assert p.returncode not in (132, 133, 134, 139), "trap: " + what
        assert "Fatal error" not in p.stderr and "Stack dump" not in p.stderr, what
        stopped = argv[0] in ("run", "run-elf") and p.returncode == 2  # a limit reached: the machine's state follows
        if p.returncode not in (0, 64) and not stopped:
            # 64 is a usage error from the argument parser (its usage text may follow); anything else is one line.
            assert len(p.stderr.strip().splitlines()) == 1, what
        if p.returncode == 64:
            assert p.stderr.strip(), what
