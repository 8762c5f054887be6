#!/usr/bin/env python3
"""Density benchmark (run by bench/density.sh): how many idle Linux guests fit on this host, and what each
costs. Same guest for rivet and qemu-system-riscv64 (the default guest's interactive shell, 1 hart).

For each VM, start mode and N:
  start-up s      per guest: process start -> its shell answers `echo` (median and max over the N guests);
                  guests are started CONCURRENCY at a time (default: the host's cores), so the total wall
                  time to bring all N up is also reported
  PSS MiB         after every guest is up and SETTLE seconds have passed: the sum of Pss over the guests'
                  /proc/PID/smaps_rollup (shared pages, e.g. a snapshot file's, are divided among sharers),
                  and that sum / N
  idle CPU %      host CPU (utime+stime) of all guests over IDLE_SECONDS, per guest, in % of one core
  KSM             with --ksm: /sys/kernel/mm/ksm pages_sharing/pages_shared after the idle period
Start modes:
  boot            each guest boots from firmware (rivet run / qemu -kernel -initrd)
  clone           rivet: --incoming file:SNAP of one snapshot (mapped copy-on-write, shared page cache);
                  qemu: -incoming "exec:cat SNAP" (read into each process)
Stops starting guests when the host's MemAvailable would drop below --reserve-gib, or the guests' total PSS
would exceed --budget-gib; `max` as N means "as many as the budget allows" (bounded by --max-guests).

Usage: density.py [--vm rivet|qemu] [--mode boot|clone] [--counts 10,50,100,max] [--memory 256M]
                  [--balloon on|off] [--merge on|off] [--ksm] [--budget-gib G] [--reserve-gib G]
                  [--max-guests N] [--idle-seconds S] [--out FILE.json]
"""
import argparse
import json
import os
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
RIVET = os.environ.get("RIVET_BIN", os.path.join(here, "..", ".build", "release", "rivet"))
GUEST = os.environ.get("RIVET_GUEST", os.path.join(os.environ.get("RIVET_CACHE", os.path.expanduser("~/.cache/rivet")), "guest-default"))
QEMU = os.environ.get("QEMU", "qemu-system-riscv64")
BIOS = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"
MARKER = b"RIVET-GUEST: init reached"
KSM = "/sys/kernel/mm/ksm"


def log(msg):
    print(f"[density] {msg}", file=sys.stderr, flush=True)


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read().rsplit(")", 1)[1].split()
        return int(s[11]) + int(s[12])
    except OSError:
        return 0


class Guest:
    """One VM on pipes. A booting guest is asked `echo` once its prompt appears; a restored one (already at
    its prompt) is asked at once, and again every RESEND seconds until it answers (QEMU drops console
    input that arrives while it is still loading the incoming state)."""
    RESEND = 0.25

    def __init__(self, argv, restored=False):
        self.start = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        os.set_blocking(self.p.stdout.fileno(), False)
        self.out = b""
        self.state = "booting"   # booting -> asked -> up | failed
        self.ready_at = None
        self.asked_at = 0.0
        if restored:
            self.ask()

    def ask(self):
        self.send(b"echo DENSITY-UP | tr A-Z a-z\n")
        self.state = "asked"
        self.asked_at = time.monotonic()

    def pump(self):
        if self.state == "asked" and self.restored_pending():
            self.ask()
        try:
            d = os.read(self.p.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        if not d:
            self.state = "failed"
            return
        self.out = (self.out + d)[-4096:]
        if self.state == "booting" and b"# " in self.out:
            self.ask()
        if self.state == "asked" and b"\ndensity-up" in self.out:
            self.state = "up"
            self.ready_at = time.monotonic() - self.start

    def restored_pending(self):
        return time.monotonic() - self.asked_at > Guest.RESEND and b"density-up" not in self.out

    def send(self, data):
        try:
            self.p.stdin.write(data)
            self.p.stdin.flush()
        except OSError:
            self.state = "failed"

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()


def rivet_argv(args, extra=()):
    argv = [RIVET, "run", "--memory", args.memory]
    if args.balloon == "on":
        argv += ["--device", "virtio-balloon"]
    if args.merge == "on":
        argv += ["--memory-merge", "on"]
    return argv + list(extra)


def qemu_argv(args, extra=()):
    argv = [QEMU, "-M", "virt", "-m", args.memory, "-smp", "1", "-display", "none", "-serial", "stdio",
            "-monitor", "none", "-bios", BIOS, "-kernel", f"{GUEST}/Image", "-initrd", f"{GUEST}/initramfs.cpio.gz",
            "-append", "console=ttyS0"]
    if args.balloon == "on":
        argv += ["-device", "virtio-balloon-device,free-page-reporting=on"]
    if args.merge == "on":
        argv += ["-machine", "mem-merge=on"]
    return argv + list(extra)


def make_snapshot(args, work):
    """Boots one guest to its shell and saves it with QMP migrate; returns the snapshot's path."""
    from qemu.qmp.legacy import QEMUMonitorProtocol
    sock = os.path.join(work, "snap.sock")
    snap = os.path.join(work, f"{args.vm}.snap")
    argv_fn = rivet_argv if args.vm == "rivet" else qemu_argv
    qmp = "--qmp" if args.vm == "rivet" else "-qmp"
    g = Guest(argv_fn(args, [qmp, f"unix:{sock},server=on,wait=off"]))
    deadline = time.monotonic() + 180
    while g.state not in ("up", "failed") and time.monotonic() < deadline:
        select.select([g.p.stdout], [], [], 0.5)
        g.pump()
    if g.state != "up":
        g.kill()
        raise RuntimeError(f"the snapshot's guest did not come up: {g.out[-500:]!r}")
    time.sleep(args.settle)
    mon = QEMUMonitorProtocol(sock)
    mon.connect(negotiate=True)
    uri = f"file:{snap}" if args.vm == "rivet" else f"exec:cat > {snap}"
    mon.cmd("migrate", uri=uri)
    while mon.cmd("query-migrate").get("status") not in ("completed", "failed"):
        time.sleep(0.05)
    mon.close()
    g.kill()
    log(f"snapshot {snap}: {os.path.getsize(snap) >> 20} MiB")
    return snap


def run_count(args, n, snap, max_mode):
    """Starts up to n guests, waits until all are up, measures; returns a result dict."""
    if args.vm == "rivet":
        argv = rivet_argv(args, ["--incoming", f"file:{snap}"] if snap else [])
    else:
        argv = qemu_argv(args, ["-incoming", f"exec:cat {snap}"] if snap else [])
    guests = []
    t0 = time.monotonic()
    stop_reason = None
    reserve = args.reserve_gib * (1 << 20)
    budget = args.budget_gib * (1 << 20)
    pending = lambda: [g for g in guests if g.state in ("booting", "asked")]
    while True:
        for g in guests:
            if g.state in ("booting", "asked"):
                g.pump()
        up = [g for g in guests if g.state == "up"]
        failed = [g for g in guests if g.state == "failed"]
        if failed:
            stop_reason = f"{len(failed)} guest(s) failed"
            break
        if len(guests) < n and len(pending()) < args.concurrency:
            avail = mem_available_kib()
            total_pss = sum(pss_kib(g.p.pid) for g in guests)
            per = total_pss / len(guests) if guests else 0
            if avail - per < reserve:
                stop_reason = f"host MemAvailable {avail >> 10} MiB near the reserve"
            elif total_pss + per > budget:
                stop_reason = f"budget of {args.budget_gib} GiB reached"
            elif time.monotonic() - t0 > args.start_limit:
                stop_reason = f"start-up time limit of {args.start_limit} s reached"
            if stop_reason:
                if not max_mode:
                    log(f"stopping early at {len(guests)} guests: {stop_reason}")
                n = len(guests)
            else:
                guests.append(Guest(argv, restored=snap is not None))
                if len(guests) % 25 == 0:
                    log(f"{len(guests)} started, {len(up)} up")
                continue
        if len(up) == len(guests) and len(guests) >= n:
            break
        if time.monotonic() - t0 > args.start_limit + 300:
            stop_reason = "guests did not come up in time"
            break
        waiting = select.poll()   # poll, not select: hundreds of guests have file descriptors past 1024
        for g in pending():
            waiting.register(g.p.stdout, select.POLLIN)
        waiting.poll(200)
    all_up = time.monotonic() - t0
    up = [g for g in guests if g.state == "up"]
    log(f"{len(up)} guests up in {all_up:.1f} s; settling {args.settle} s")
    time.sleep(args.settle)
    for g in guests:
        g.pump()
    pss = [pss_kib(g.p.pid) for g in up]
    c0 = sum(cpu_ticks(g.p.pid) for g in up)
    t_idle = time.monotonic()
    time.sleep(args.idle_seconds)
    c1 = sum(cpu_ticks(g.p.pid) for g in up)
    idle_s = time.monotonic() - t_idle
    pss_after = [pss_kib(g.p.pid) for g in up]
    ksm = {}
    if args.ksm and os.path.isdir(KSM):
        for k in ("pages_sharing", "pages_shared"):
            with open(f"{KSM}/{k}") as f:
                ksm[k] = int(f.read())
    alive = sum(1 for g in up if g.p.poll() is None and g.state == "up")
    for g in guests:
        g.kill()
    starts = sorted(g.ready_at for g in up)
    count = len(up)
    res = {
        "vm": args.vm, "mode": "clone" if snap else "boot", "requested": "max" if max_mode else n, "guests": count,
        "alive after idle": alive, "stop reason": stop_reason,
        "start-up median s": round(statistics.median(starts), 3) if starts else None,
        "start-up max s": round(starts[-1], 3) if starts else None,
        "all up s": round(all_up, 1),
        "total PSS MiB": round(sum(pss_after) / 1024, 1),
        "PSS per guest MiB": round(sum(pss_after) / 1024 / count, 2) if count else None,
        "PSS per guest MiB (before idle period)": round(sum(pss) / 1024 / count, 2) if count else None,
        "idle CPU per guest %": round((c1 - c0) / os.sysconf("SC_CLK_TCK") / idle_s / count * 100, 3) if count else None,
        "idle seconds": round(idle_s, 1),
    }
    if ksm:
        res["ksm"] = ksm
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vm", choices=("rivet", "qemu"), default="rivet")
    ap.add_argument("--mode", choices=("boot", "clone"), default="clone")
    ap.add_argument("--counts", default="10,50,100")
    ap.add_argument("--memory", default="256M")
    ap.add_argument("--balloon", choices=("on", "off"), default="on")
    ap.add_argument("--merge", choices=("on", "off"), default="off")
    ap.add_argument("--ksm", action="store_true", help="turn host KSM on (run=1) for the run, restore it after")
    ap.add_argument("--budget-gib", type=float, default=12.0)
    ap.add_argument("--reserve-gib", type=float, default=4.0)
    ap.add_argument("--max-guests", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--settle", type=float, default=10.0)
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument("--start-limit", type=float, default=420.0, help="stop starting guests after this many seconds")
    ap.add_argument("--out")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ksm_before = None
    if args.ksm:
        try:
            with open(f"{KSM}/run") as f:
                ksm_before = f.read().strip()
            with open(f"{KSM}/run", "w") as f:
                f.write("1")
            log("KSM on for this run")
        except OSError as e:
            log(f"KSM unavailable ({e}); continuing without it")
            args.ksm = False
    results = []
    try:
        with tempfile.TemporaryDirectory() as work:
            snap = make_snapshot(args, work) if args.mode == "clone" else None
            for c in args.counts.split(","):
                max_mode = c == "max"
                n = args.max_guests if max_mode else int(c)
                log(f"{args.vm} {args.mode}: {c} guests")
                r = run_count(args, n, snap, max_mode)
                print(json.dumps(r), flush=True)
                results.append(r)
    finally:
        if ksm_before is not None:
            with open(f"{KSM}/run", "w") as f:
                f.write(ksm_before)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
