"""Image locking: Rivet takes QEMU's open-file-description locks (bytes 100+bit used, 200+bit not shared),
so Rivet, qemu-system-riscv64, qemu-img and qemu-io exclude each other in both directions, readers share,
and force-share (-U, force-share=on) reads despite a writer.

The holder processes are real: `rivet run` on a firmware that spins (no guest needed), qemu-system-riscv64
stopped at reset (-S), qemu-io waiting on its stdin. A holder is ready when /proc/locks shows its locks."""
import os
import shutil
import subprocess
import time

import pytest

from storage_helpers import RIVET, qemu_img, require_tools, rivet

SPIN = bytes.fromhex("6f000000")  # j .


@pytest.fixture(autouse=True)
def tools():
    require_tools()
    assert shutil.which("qemu-system-riscv64"), "qemu-system-riscv64 is required (apt-get install qemu-system-misc)"


@pytest.fixture
def spin(tmp_path):
    p = tmp_path / "spin.bin"
    p.write_bytes(SPIN)
    return p


def lock_bytes(path):
    """The byte offsets any process holds locks on in `path` (from /proc/locks)."""
    st = os.stat(path)
    key = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    held = set()
    with open("/proc/locks") as f:
        for line in f:
            fields = line.split()
            if "->" in fields:
                continue  # a waiter, not a holder
            if len(fields) >= 8 and fields[5] == key:
                start, end = int(fields[6]), int(fields[7]) if fields[7] != "EOF" else int(fields[6])
                held.update(range(start, end + 1))
    return held


class Holder:
    """A process that keeps an image open; ready once its lock bytes show in /proc/locks."""

    def __init__(self, argv, image, expect, stdin=subprocess.DEVNULL):
        self.proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while not expect <= lock_bytes(image):
            if self.proc.poll() is not None:
                pytest.fail(f"{argv} exited {self.proc.returncode} before locking: {self.proc.stderr.read()!r}")
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"{argv} never locked {sorted(expect)} on {image}; held: {sorted(lock_bytes(image))}")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def rivet_holder(spin, drive, image, expect):
    return Holder([RIVET, "run", "--bios", spin, "--kernel", spin, "--drive", drive, "--time-limit", "120"],
                  image, expect)


def qemu_holder(image, fmt, extra=""):
    expect = {100} | ({101} if "readonly" not in extra else set())
    return Holder(["qemu-system-riscv64", "-machine", "virt", "-nographic", "-S", "-monitor", "none",
                   "-serial", "none", "-drive", f"file={image},format={fmt},if=none,id=d0{extra}",
                   "-device", "virtio-blk-device,drive=d0"], image, expect)


def rivet_run_drive(spin, drive):
    """Starts a machine with the drive; exit 2 at --max-instructions means it got past start-up."""
    return subprocess.run([RIVET, "run", "--bios", spin, "--kernel", spin, "--drive", drive,
                           "--max-instructions", "1000"], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=60)


def assert_in_use_error(p, image):
    assert p.returncode == 1, f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert str(image) in lines[0] and "in use by another process" in lines[0], p.stderr


def make(tmp_path, fmt, name="disk"):
    image = tmp_path / f"{name}.{fmt}"
    qemu_img("create", "-f", fmt, image, "16M")
    return image


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_rivet_writer_locks_out_qemu_tools_and_a_second_rivet(tmp_path, spin, fmt):
    image = make(tmp_path, fmt)
    with rivet_holder(spin, f"{image},format={fmt}", image, {100, 101, 201}):
        # The same bytes QEMU takes for a writable disk.
        want = {100, 101, 201} | ({103, 203} if fmt == "qcow2" else set())
        assert want <= lock_bytes(image)
        w = subprocess.run(["qemu-io", "-f", fmt, "-c", "write -P 0x55 0 4k", str(image)],
                           capture_output=True, text=True, timeout=60)
        assert w.returncode != 0 and 'Failed to get "write" lock' in w.stderr, w.stderr
        info = qemu_img("info", "-f", fmt, image, check=False)
        if fmt == "qcow2":
            # qcow2 metadata must not change underneath; a raw file's info reads no data (as qemu-img).
            assert info.returncode != 0 and 'Failed to get shared "write" lock' in info.stderr, info.stderr
            assert_in_use_error(rivet("info", "-f", fmt, image, check=False), image)
        else:
            assert info.returncode == 0 and rivet("info", "-f", fmt, image).returncode == 0
        assert qemu_img("info", "-U", "-f", fmt, image).returncode == 0
        assert_in_use_error(rivet_run_drive(spin, f"{image},format={fmt}"), image)
        assert_in_use_error(rivet_run_drive(spin, f"{image},format={fmt},readonly"), image)
        assert rivet("info", "-U", "-f", fmt, image).returncode == 0
        # Deliberate sharing: a read-only drive with force-share starts.
        shared = rivet_run_drive(spin, f"{image},format={fmt},readonly,force-share=on")
        assert shared.returncode == 2, shared.stderr
    # Once the holder is gone the image is free again.
    assert qemu_img("info", "-f", fmt, image).returncode == 0


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
def test_qemu_writer_locks_out_rivet(tmp_path, spin, fmt):
    image = make(tmp_path, fmt)
    qemu_io_ok = subprocess.run(["qemu-io", "-f", fmt, "-c", "write -P 0x5a 0 64k", str(image)],
                                capture_output=True, timeout=60)
    assert qemu_io_ok.returncode == 0
    before = image.read_bytes()
    with qemu_holder(image, fmt):
        assert_in_use_error(rivet_run_drive(spin, f"{image},format={fmt}"), image)
        assert_in_use_error(rivet_run_drive(spin, f"{image},format={fmt},readonly"), image)
        assert rivet("info", "-U", "-f", fmt, image).returncode == 0
        if fmt == "qcow2":
            assert_in_use_error(rivet("info", image, check=False), image)
            assert_in_use_error(rivet("check", image, check=False), image)
            assert rivet("check", "-U", image).returncode == 0
        # Creating over an image in use must not truncate it.
        assert_in_use_error(rivet("create", "-f", fmt, image, "1M", check=False), image)
        shared = rivet_run_drive(spin, f"{image},format={fmt},readonly,force-share=on")
        assert shared.returncode == 2, shared.stderr
        assert image.read_bytes() == before
    assert rivet_run_drive(spin, f"{image},format={fmt}").returncode == 2


def test_readers_share_and_exclude_writers(tmp_path, spin):
    image = make(tmp_path, "qcow2")
    with rivet_holder(spin, f"{image},readonly", image, {100, 201}):
        assert 101 not in lock_bytes(image)
        assert rivet_run_drive(spin, f"{image},readonly").returncode == 2
        r = subprocess.run(["qemu-io", "-r", "-c", "read 0 4k", str(image)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert qemu_img("info", image).returncode == 0
        w = subprocess.run(["qemu-io", "-c", "write 0 4k", str(image)], capture_output=True, text=True, timeout=60)
        assert w.returncode != 0 and 'Failed to get "write" lock' in w.stderr, w.stderr
        assert_in_use_error(rivet_run_drive(spin, f"{image}"), image)
    with qemu_holder(image, "qcow2", ",readonly=on"):
        assert rivet_run_drive(spin, f"{image},readonly").returncode == 2
        assert_in_use_error(rivet_run_drive(spin, f"{image}"), image)
    # qemu-io reading with its stdin open holds its read lock until the pipe closes.
    reader = Holder(["qemu-io", "-r", str(image)], image, {100, 201}, stdin=subprocess.PIPE)
    with reader:
        assert rivet_run_drive(spin, f"{image},readonly").returncode == 2
        assert_in_use_error(rivet_run_drive(spin, f"{image}"), image)


def test_force_share_needs_readonly(tmp_path, spin):
    image = make(tmp_path, "qcow2")
    p = rivet_run_drive(spin, f"{image},force-share=on")
    assert p.returncode == 1 and "readonly" in p.stderr and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_backing_file_is_locked_for_reading(tmp_path, spin):
    base = make(tmp_path, "qcow2", "base")
    top = tmp_path / "top.qcow2"
    rivet("create", "-f", "qcow2", "-b", base.name, "-F", "qcow2", top)
    with rivet_holder(spin, f"{top}", top, {100, 101}):
        assert {100, 201} <= lock_bytes(base) and 101 not in lock_bytes(base)
        w = subprocess.run(["qemu-io", "-c", "write 0 4k", str(base)], capture_output=True, text=True, timeout=60)
        assert w.returncode != 0 and "lock" in w.stderr, w.stderr


def test_qemu_nbd_server_and_rivet_exclude_each_other(tmp_path, spin):
    assert shutil.which("qemu-nbd"), "qemu-nbd is required (apt-get install qemu-utils)"
    image = make(tmp_path, "qcow2")
    sock = tmp_path / "nbd.sock"
    with Holder(["qemu-nbd", "--persistent", "--socket", str(sock), "-f", "qcow2", str(image)], image, {100, 101}):
        assert_in_use_error(rivet_run_drive(spin, f"{image}"), image)
        assert rivet_run_drive(spin, f"{image},readonly,force-share=on").returncode == 2
    with rivet_holder(spin, f"{image}", image, {100, 101}):
        n = subprocess.run(["qemu-nbd", "--socket", str(sock), "-f", "qcow2", str(image)], capture_output=True,
                           text=True, timeout=60)
        assert n.returncode != 0 and "lock" in n.stderr, n.stderr
