#!/usr/bin/env python3
"""Snapshot benchmark (run by bench/snapshot.sh): rivet and qemu-system-riscv64 in the same run, same guest
(the default guest's interactive shell, 256 MiB, 1 hart).

For each VM:
  cold boot      process start -> the shell answers `echo` (the prompt is waited for, then the command sent)
  save           QMP migrate until query-migrate says completed (rivet: file: and exec:cat; QEMU: exec:cat)
  size           bytes of the snapshot
  restore        process start with --incoming/-incoming -> QMP says running -> the restored shell answers
                 one `echo` sent then
                 (rivet: file: is mapped copy-on-write; exec:cat is read through a pipe)
Each restore is repeated REPEAT times (median reported). Prints a table and writes JSON to OUT if given.
"""
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time

from qemu.qmp.legacy import QEMUMonitorProtocol

here = os.path.dirname(os.path.abspath(__file__))
RIVET = os.environ.get("RIVET_BIN", os.path.join(here, "..", ".build", "release", "rivet"))
GUEST = os.environ.get("RIVET_GUEST", os.path.join(os.environ.get("RIVET_CACHE", os.path.expanduser("~/.cache/rivet")), "guest-default"))
BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"
REPEAT = int(os.environ.get("REPEAT", "3"))
MARKER = b"RIVET-GUEST: init reached"


def rivet_argv(sock, *extra):
    return [RIVET, "run", "--memory", "256M", "--qmp", f"unix:{sock},server=on,wait=off", *extra]


def qemu_argv(sock, *extra):
    return ["qemu-system-riscv64", "-M", "virt", "-m", "256M", "-smp", "1", "-display", "none", "-serial", "stdio",
            "-monitor", "none", "-bios", BIOS, "-kernel", f"{GUEST}/Image", "-initrd", f"{GUEST}/initramfs.cpio.gz",
            "-append", "console=ttyS0", "-qmp", f"unix:{sock},server=on,wait=off", *extra]


class VM:
    def __init__(self, argv, sock):
        self.sock = sock
        if os.path.exists(sock):
            os.unlink(sock)
        self.start = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.out = b""

    def wait_for(self, needle, start=0, timeout=120):
        end = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while needle not in self.out[start:]:
            left = end - time.monotonic()
            if left <= 0 or self.p.poll() is not None:
                raise RuntimeError(f"no {needle!r}: {self.out[-500:]!r} {self.p.stderr.read()[-500:] if self.p.poll() is not None else ''}")
            r, _, _ = select.select([fd], [], [], left)
            if r:
                d = os.read(fd, 65536)
                if not d:
                    raise RuntimeError("output closed")
                self.out += d
        return time.monotonic() - self.start

    def echo(self, token):
        """Sends `echo TOKEN | tr A-Z a-z` once and waits for the answer (the token in lower case);
        returns seconds since process start."""
        mark = len(self.out)
        self.p.stdin.write(f"echo {token} | tr A-Z a-z\n".encode())
        self.p.stdin.flush()
        return self.wait_for(f"\n{token.lower()}".encode(), start=mark)

    def wait_running(self):
        """Polls QMP until the VM runs (an incoming VM has loaded its state)."""
        mon = self.monitor()
        while mon.cmd("query-status")["status"] != "running":
            time.sleep(0.002)
        mon.close()

    def monitor(self):
        while True:
            try:
                m = QEMUMonitorProtocol(self.sock)
                m.connect(negotiate=True)
                return m
            except Exception:
                if self.p.poll() is not None or time.monotonic() - self.start > 120:
                    raise
                time.sleep(0.002)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def save(vm, uri):
    mon = vm.monitor()
    t = time.monotonic()
    mon.cmd("migrate", uri=uri)
    while True:
        info = mon.cmd("query-migrate")
        if info.get("status") in ("completed", "failed"):
            break
        time.sleep(0.005)
    elapsed = time.monotonic() - t
    assert info["status"] == "completed", info
    mon.close()
    return elapsed


def measure(name, argv_fn, saves, restores, work):
    sock = os.path.join(work, f"{name}.sock")
    res = {}
    boots = []
    files = {}
    for i in range(REPEAT):
        vm = VM(argv_fn(sock), sock)
        try:
            vm.wait_for(MARKER)
            vm.wait_for(b"# ", start=vm.out.index(MARKER))
            boots.append(vm.echo("BOOTED"))
            if i == REPEAT - 1:
                for label, uri_fn in saves:
                    path = os.path.join(work, f"{name}-{label}.snap")
                    res[f"save {label} s"] = round(save(vm, uri_fn(path)), 3)
                    res[f"size {label} bytes"] = os.path.getsize(path)
                    files[label] = path
                    mon = vm.monitor()
                    mon.cmd("cont")
                    mon.close()
        finally:
            vm.kill()
    res["cold boot to shell s"] = round(statistics.median(boots), 3)
    for label, src, uri_fn in restores:
        times = []
        for _ in range(REPEAT):
            vm = VM(argv_fn(sock, *uri_fn(files[src])), sock)
            try:
                vm.wait_running()
                times.append(vm.echo("RESTORED"))
            finally:
                vm.kill()
        res[f"restore {label} s"] = round(statistics.median(times), 3)
    return res


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory() as work:
        rivet = measure("rivet", rivet_argv,
                        [("file", lambda p: f"file:{p}"), ("exec", lambda p: f"exec:cat > {p}")],
                        [("file (mapped)", "file", lambda p: ["--incoming", f"file:{p}"]),
                         ("exec:cat", "exec", lambda p: ["--incoming", f"exec:cat {p}"])], work)
        qemu = measure("qemu", qemu_argv, [("exec", lambda p: f"exec:cat > {p}")],
                       [("exec:cat", "exec", lambda p: ["-incoming", f"exec:cat {p}"])], work)
    print(f"{'measure':34} {'rivet':>12} {'qemu':>12}")
    keys = list(dict.fromkeys(list(rivet) + list(qemu)))
    for k in keys:
        print(f"{k:34} {str(rivet.get(k, '-')):>12} {str(qemu.get(k, '-')):>12}")
    r_restore = rivet["restore file (mapped) s"]
    print(f"rivet cold boot / rivet restore: {rivet['cold boot to shell s'] / r_restore:.1f}x; "
          f"qemu restore / rivet restore: {qemu['restore exec:cat s'] / r_restore:.1f}x")
    if out:
        with open(out, "w") as f:
            json.dump({"rivet": rivet, "qemu": qemu}, f, indent=1)


if __name__ == "__main__":
    main()
