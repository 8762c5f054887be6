"""Boots the built guest on the oracle (qemu-system-riscv64 virt + Debian's OpenSBI).

Guest folder: $RIVET_GUEST_DIR, else ${RIVET_CACHE:-~/.cache/rivet}/guest-default.
Run: python3 -m pytest -v guest/tests   (prints the boot and bench times with -s)
"""
import os
import re
import select
import shutil
import subprocess
import time

import pytest

FIRMWARE = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"
MARKER = "RIVET-GUEST: init reached"
BENCHES = ["intloop", "sha256", "sort", "nbody", "memwalk", "interp", "lists", "qsortcall"]


def guest_dir():
    d = os.environ.get("RIVET_GUEST_DIR")
    if not d:
        cache = os.environ.get("RIVET_CACHE", os.path.expanduser("~/.cache/rivet"))
        d = os.path.join(cache, "guest-default")
    if not os.path.isfile(os.path.join(d, "recipe.sha")):
        pytest.skip(f"no complete guest in {d}: run guest/build.sh first")
    return d


class Guest:
    """One qemu run: collects console output with timestamps, can type into the console."""

    def __init__(self, append_extra="", extra_args=(), smp=2):
        d = guest_dir()
        cmd = ["qemu-system-riscv64", "-machine", "virt", "-m", "256M", "-smp", str(smp),
               "-nographic", "-bios", FIRMWARE,
               "-kernel", os.path.join(d, "Image"),
               "-initrd", os.path.join(d, "initramfs.cpio.gz"),
               "-append", ("console=ttyS0 earlycon=sbi " + append_extra).strip(),
               *extra_args]
        self.start = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self.out = ""
        self.marker_at = None

    def _pump(self, deadline):
        """Reads what is available until deadline; returns False at EOF."""
        fd = self.proc.stdout.fileno()
        wait = max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], min(wait, 0.2))
        if not ready:
            return True
        chunk = os.read(fd, 65536)
        if not chunk:
            return False
        self.out += chunk.decode("utf-8", "replace")
        if self.marker_at is None and MARKER in self.out:
            self.marker_at = time.monotonic() - self.start
        return True

    def expect(self, pattern, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.out)
            if m:
                return m
            if not self._pump(deadline):
                break
        m = re.search(pattern, self.out)
        assert m, f"no /{pattern}/ within {timeout}s; console tail:\n{self.out[-2000:]}"
        return m

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()

    def wait_exit(self, timeout=60):
        """qemu must exit by itself (guest power-off); returns its exit status."""
        deadline = time.monotonic() + timeout
        while self._pump(deadline) and time.monotonic() < deadline:
            pass
        try:
            return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"qemu still running after {timeout}s; console tail:\n{self.out[-2000:]}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def run_guest():
    started = []

    def start(*args, **kwargs):
        g = Guest(*args, **kwargs)
        started.append(g)
        return g

    yield start
    for g in started:
        g.kill()


def test_run_command_reports_two_harts_and_powers_off(run_guest):
    g = run_guest("rivet.run=echo,harts=$(nproc)")
    g.expect(MARKER, timeout=60)
    g.expect(r"harts=2\b")
    g.expect(r"RIVET-GUEST: run exit status 0")
    assert g.wait_exit() == 0
    print(f"\nboot to marker: {g.marker_at:.2f} s")


def test_interactive_shell_then_exit_powers_off(run_guest):
    g = run_guest()
    g.expect(MARKER, timeout=60)
    g.send("echo shell-says-$((6*7)); cat /proc/mounts | grep -c -e devtmpfs -e tmpfs -e proc -e sysfs")
    g.expect(r"shell-says-42")
    g.send("test -w /tmp && echo tmp-writable; ls /bench")
    g.expect(r"tmp-writable")
    g.expect(r"smc")
    g.send("exit")
    g.expect(r"RIVET-GUEST: powering off")
    assert g.wait_exit() == 0


def test_self_modifying_code(run_guest):
    g = run_guest("rivet.run=/bench/smc")
    m = g.expect(r"SMC (OK|FAIL[^\n]*)")
    assert m.group(1) == "OK"
    assert g.wait_exit() == 0


@pytest.mark.parametrize("name", BENCHES)
def test_bench(run_guest, name):
    g = run_guest(f"rivet.run=/bench/{name}")
    m = g.expect(rf"BENCH {name} (\d+\.\d{{3}}) (\S+)\r?\n", timeout=120)
    seconds, result = float(m.group(1)), m.group(2)
    assert "FAIL" not in g.out
    assert seconds > 0
    g.expect(r"RIVET-GUEST: run exit status 0")
    assert g.wait_exit() == 0
    print(f"\nBENCH {name} {seconds:.3f} s -> {result}")

    # The same binary under user-mode qemu must compute the same result.
    if shutil.which("qemu-riscv64"):
        ref = subprocess.run(["qemu-riscv64", os.path.join(guest_dir(), "bench", name)],
                             capture_output=True, text=True, timeout=120, check=True).stdout
        want = re.search(rf"BENCH {name} \S+ (\S+)", ref).group(1)
        assert result == want, f"guest result {result}, qemu-riscv64 result {want}"


def test_ext4_disk_mount_write_sync(run_guest, tmp_path):
    for tool in ("mkfs.ext4", "debugfs"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed (e2fsprogs)")
    content = tmp_path / "content"
    content.mkdir()
    (content / "hello.txt").write_text("hello from the host\n")
    disk = tmp_path / "disk.img"
    subprocess.run(["truncate", "-s", "32M", str(disk)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(content), str(disk)], check=True)

    script = ("mount,-t,ext4,/dev/vda,/mnt;cat,/mnt/hello.txt;"
              "echo,written-by-guest>/mnt/guest.txt;sync;umount,/mnt")
    g = run_guest(f"rivet.run={script}",
                  extra_args=["-drive", f"file={disk},format=raw,if=none,id=d0",
                              "-device", "virtio-blk-device,drive=d0"])
    g.expect(r"hello from the host")
    g.expect(r"RIVET-GUEST: run exit status 0")
    assert g.wait_exit() == 0

    got = subprocess.run(["debugfs", "-R", "cat /guest.txt", str(disk)],
                         capture_output=True, text=True, check=True).stdout
    assert got == "written-by-guest\n"
    fsck = subprocess.run(["e2fsck", "-fn", str(disk)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_sha256_bench_digest_matches_hashlib():
    """The bench's SHA-256 and data generator, checked against Python on 1 MiB."""
    if not shutil.which("qemu-riscv64"):
        pytest.skip("qemu-riscv64 (qemu-user) not installed")
    import hashlib
    import struct
    mask = (1 << 64) - 1
    x, words = 0x9E3779B97F4A7C15, []
    for _ in range((1 << 20) // 8):
        x ^= x >> 12
        x ^= (x << 25) & mask
        x ^= x >> 27
        words.append((x * 0x2545F4914F6CDD1D) & mask)
    want = hashlib.sha256(struct.pack(f"<{len(words)}Q", *words)).hexdigest()
    out = subprocess.run(["qemu-riscv64", os.path.join(guest_dir(), "bench", "sha256"), "1"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.split()[3] == want
