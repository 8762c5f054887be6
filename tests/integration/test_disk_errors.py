"""Disk errors reach the user (real guest, real images, a real full file system):

- a corrupt qcow2 L2 entry fails only the cluster it maps; the image is marked corrupt (the header bit, as
  QEMU) and one stderr line names the image, the offset and the problem;
- a full host file system (ENOSPC, a small tmpfs this test mounts) follows the drive's werror policy:
  report (the guest sees an I/O error), ignore, and stop / enospc (the default), which pause the machine
  until the user continues (Ctrl-A C on the console); the held write is then retried and nothing is lost.
"""
import os
import pty
import struct
import subprocess
import threading
import time

import pytest

from storage_helpers import qemu_img, require_tools

MARKER = "RIVET-GUEST: init reached"


def append(cmd):
    return f"console=ttyS0 rivet.run={cmd}"


@pytest.fixture(autouse=True)
def tools():
    require_tools()


def corrupt_l2_entry(path, index):
    """Points L2 entry `index` of the first L2 table past the end of the file (offset aligned, reserved bits 0)."""
    with open(path, "r+b") as f:
        header = f.read(104)
        l1_offset = struct.unpack_from(">Q", header, 40)[0]
        f.seek(l1_offset)
        l2_offset = struct.unpack(">Q", f.read(8))[0] & 0x00FFFFFFFFFFFE00
        assert l2_offset, "no L2 table"
        size = os.path.getsize(path)
        bogus = ((size + (1 << 30)) & ~0xFFFF) | (1 << 63)
        f.seek(l2_offset + 8 * index)
        f.write(struct.pack(">Q", bogus))
        return l2_offset


def test_corrupt_l2_entry_fails_only_its_cluster_and_marks_the_image(rivet_run, guest_dir, tmp_path):
    image = tmp_path / "disk.qcow2"
    qemu_img("create", "-f", "qcow2", image, "8M")
    w = subprocess.run(["qemu-io", "-c", "write -P 0x11 0 1M", str(image)], capture_output=True, timeout=60)
    assert w.returncode == 0
    l2 = corrupt_l2_entry(image, 3)
    cmd = ("for,s,in,0,3,5;do,dd,if=/dev/vda,of=/dev/null,bs=65536,count=1,skip=$s,iflag=direct,2>/dev/null"
           "&&echo,READ-OK-$s||echo,READ-FAIL-$s;done;"
           "dd,if=/dev/zero,of=/dev/vda,bs=65536,count=1,seek=7,oflag=direct,2>/dev/null&&echo,WRITE-OK-7")
    r = rivet_run("--drive", f"{image},format=qcow2", "--append", append(cmd), time_limit=120)
    assert r.returncode == 0, r.describe()
    for s, word in ((0, "OK"), (3, "FAIL"), (5, "OK")):
        assert f"READ-{word}-{s}" in r.stdout, r.describe()
    assert "WRITE-OK-7" in r.stdout, r.describe()
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.describe()
    line = lines[0]
    assert str(image) in line and "0x30000" in line and hex(l2) in line, line
    assert "past the end of the file" in line and "marked corrupt" in line, line
    info = qemu_img("info", "--output=json", image).stdout
    assert '"corrupt": true' in info, info
    # A corrupt image is refused for writing until repaired, and still reads.
    again = rivet_run("--drive", f"{image},format=qcow2", "--append", append("true"), time_limit=60)
    assert again.returncode == 1 and "marked corrupt" in again.stderr, again.describe()


@pytest.fixture
def tiny_fs(tmp_path):
    """A 4 MiB tmpfs of our own, so the host really runs out of space."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


WRITE_8M = "yes,rivet|dd,of=/dev/vda,bs=1M,count=8,iflag=fullblock,oflag=direct;echo,dd-status=$?;sync"
PATTERN = (b"rivet\n" * ((8 << 20) // 6 + 1))[: 8 << 20]


def sparse_raw(mnt):
    image = mnt / "disk.raw"
    with open(image, "wb") as f:
        f.truncate(64 << 20)
    return image


@pytest.mark.parametrize("policy,guest_sees", [("report", "dd-status=1"), ("ignore", "dd-status=0")])
def test_enospc_report_and_ignore(rivet_run, guest_dir, tiny_fs, policy, guest_sees):
    image = sparse_raw(tiny_fs)
    r = rivet_run("--drive", f"{image},format=raw,werror={policy}", "--append", append(WRITE_8M), time_limit=120)
    assert r.returncode == 0, r.describe()
    assert guest_sees in r.stdout, r.describe()
    errs = [l for l in r.stderr.splitlines() if "no space left on the host" in l]
    assert errs and str(image) in errs[0] and "write failed" in errs[0], r.describe()
    assert len(r.stderr.strip().splitlines()) <= 21, "stderr flooded:\n" + r.stderr[-3000:]


class ConsoleOnPty:
    """rivet run with its console on a pseudo-terminal (so Ctrl-A keys work), stdout/stderr collected."""

    def __init__(self, argv, deadline):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(slave)
        self.out, self.err = b"", b""
        self.deadline = time.monotonic() + deadline
        self.threads = [threading.Thread(target=self._drain, args=(self.proc.stdout, "out"), daemon=True),
                        threading.Thread(target=self._drain, args=(self.proc.stderr, "err"), daemon=True)]
        for t in self.threads:
            t.start()

    def _drain(self, stream, name):
        for chunk in iter(lambda: stream.read1(65536), b""):
            setattr(self, name, getattr(self, name) + chunk)

    def wait_for(self, name, needle):
        while needle not in getattr(self, name):
            if time.monotonic() > self.deadline or self.proc.poll() is not None:
                self.proc.kill()
                pytest.fail(f"never saw {needle!r} on {name}\nstdout: {self.out[-3000:]!r}\nstderr: {self.err[-3000:]!r}")
            time.sleep(0.05)

    def finish(self):
        code = self.proc.wait(timeout=max(1, self.deadline - time.monotonic()))
        for t in self.threads:
            t.join(timeout=10)
        os.close(self.master)
        return code


@pytest.mark.parametrize("fmt,werror", [("raw", None), ("qcow2", "stop")])
def test_enospc_stop_pauses_and_continues_with_nothing_lost(rivet_bin, guest_dir, tiny_fs, tmp_path, fmt, werror):
    if fmt == "raw":
        image = sparse_raw(tiny_fs)
    else:
        image = tiny_fs / "disk.qcow2"
        qemu_img("create", "-f", "qcow2", image, "64M")
    drive = f"{image},format={fmt}" + (f",werror={werror}" if werror else "")   # None: QEMU's default, enospc
    s = ConsoleOnPty([str(rivet_bin), "run", "--time-limit", "150", "--drive", drive, "--append", append(WRITE_8M)],
                     deadline=170)
    s.wait_for("err", b"machine paused")
    assert b"no space left on the host" in s.err and str(image).encode() in s.err
    assert b"dd-status=0" not in s.out and b"dd-status=1" not in s.out, "the guest went on while paused"
    # The user frees space, then continues.
    subprocess.run(["mount", "-o", "remount,size=128m", str(tiny_fs)], check=True)
    os.write(s.master, b"\x01c")
    s.wait_for("out", b"dd-status=0")
    code = s.finish()
    assert code == 0, s.err[-3000:]
    if fmt == "qcow2":
        check = qemu_img("check", image, check=False)
        assert check.returncode in (0, 3), check.stdout + check.stderr   # leaks allowed, corruption not
        flat = tmp_path / "flat.raw"
        qemu_img("convert", "-O", "raw", image, flat)
        image = flat
    with open(image, "rb") as f:
        assert f.read(8 << 20) == PATTERN, "data written before or after the pause was lost"


def test_enospc_stop_over_qmp_is_an_io_error_pause_and_cont_retries(rivet_bin, guest_dir, tiny_fs, tmp_path):
    """The management view of the same pause: BLOCK_IO_ERROR (action stop, nospace), query-status io-error,
    a STOP event; QMP cont retries the held write and the data arrives whole."""
    from qmp_helpers import Machine, quit_and_close, wait_event
    image = sparse_raw(tiny_fs)
    m = Machine(rivet_bin, tmp_path / "q.sock", "--drive", f"{image},format=raw", "--append", append(WRITE_8M),
                time_limit=150)
    mon = m.monitor()
    event = wait_event(mon, "BLOCK_IO_ERROR")
    data = event["data"]
    assert data["action"] == "stop" and data["operation"] == "write" and data["nospace"] is True, event
    assert str(image) in data["device"], event
    wait_event(mon, "STOP")
    status = mon.cmd("query-status")
    assert status["status"] == "io-error" and status["running"] is False, status
    assert b"dd-status=" not in m.output, "the guest went on while paused"
    subprocess.run(["mount", "-o", "remount,size=128m", str(tiny_fs)], check=True)
    mon.cmd("cont")
    wait_event(mon, "RESUME")
    m.wait_for(b"dd-status=0")
    mon.close()
    assert m.finish() == 0, m.stderr[-3000:]
    with open(image, "rb") as f:
        assert f.read(8 << 20) == PATTERN, "data written before or after the pause was lost"
