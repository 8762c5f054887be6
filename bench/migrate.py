#!/usr/bin/env python3
"""Live-migration benchmark (run by bench/migrate.sh): rivet and qemu-system-riscv64 in the same run, same
guest (the default guest, 256 MiB, 1 hart), same bandwidth limit and downtime limit, over loopback TCP.

Workloads: `idle` (the shell at its prompt), `abwalk` (guest/bench/abwalk.c walking 64 MiB, one byte
per page, as fast as it can) and `disk` (the idle shell with a 256 MiB raw drive holding 64 MiB of random
data, migrated with "blk": true to a fresh image: block migration, QEMU's and rivet's). For each VM and workload: a source boots, a destination waits with
--incoming/-incoming tcp:, QMP migrate runs until query-migrate says completed; reported are the
source's total-time, downtime and ram.transferred, and the destination is checked to answer `echo`
(for abwalk: to keep passing). QEMU runs with the auto-converge capability on, as rivet always does.
Prints a table; writes JSON to OUT if given. BANDWIDTH (bytes/s, default 1 GiB/s), REPEAT and WORKLOADS
("idle abwalk disk") override.
"""
import json
import os
import socket
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from snapshot import GUEST, MARKER, VM, qemu_argv, rivet_argv  # noqa: E402

BANDWIDTH = int(os.environ.get("BANDWIDTH", str(1 << 30)))
REPEAT = int(os.environ.get("REPEAT", "3"))
DOWNTIME_LIMIT = 300


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def disk_images(work):
    """A 256 MiB sparse raw image with 64 MiB of random data at its start, and an empty one."""
    src, dst = os.path.join(work, "src-disk.raw"), os.path.join(work, "dst-disk.raw")
    with open(src, "wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
        f.truncate(256 << 20)
    with open(dst, "wb") as f:
        f.truncate(256 << 20)
    return src, dst


def drive_args(kind, path):
    if kind == "rivet":
        return ["--drive", f"{path},format=raw"]
    return ["-drive", f"file={path},format=raw,if=none,id=d0", "-device", "virtio-blk-device,drive=d0"]


def one(kind, workload, work):
    src_sock, dst_sock = os.path.join(work, f"{kind}-s.sock"), os.path.join(work, f"{kind}-d.sock")
    argv = rivet_argv if kind == "rivet" else qemu_argv
    port = free_port()
    incoming = ["--incoming" if kind == "rivet" else "-incoming", f"tcp:127.0.0.1:{port}"]
    src_drive, dst_drive = [], []
    if workload == "disk":
        src_disk, dst_disk = disk_images(work)
        src_drive, dst_drive = drive_args(kind, src_disk), drive_args(kind, dst_disk)
    src = VM(argv(src_sock, *src_drive), src_sock)
    dst = None
    try:
        src.wait_for(MARKER)
        src.wait_for(b"# ", start=src.out.index(MARKER))
        src.echo("BOOTED")
        if workload == "abwalk":
            mark = len(src.out)
            src.p.stdin.write(b"/bench/abwalk 64 &\n")
            src.p.stdin.flush()
            src.wait_for(b"ABWALK pass", start=mark)
        dst = VM(argv(dst_sock, *dst_drive, *incoming), dst_sock)
        dmon = dst.monitor()  # listening once QMP answers
        mon = src.monitor()
        if kind == "qemu":
            mon.cmd("migrate-set-capabilities", capabilities=[{"capability": "auto-converge", "state": True}])
        mon.cmd("migrate-set-parameters", **{"max-bandwidth": BANDWIDTH, "downtime-limit": DOWNTIME_LIMIT})
        t = time.monotonic()
        if workload == "disk":
            mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port}", blk=True)
        else:
            mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port}")
        disk_sent = 0
        while True:
            info = mon.cmd("query-migrate")
            # QEMU reports block migration's bytes only while it is active.
            disk_sent = max(disk_sent, info.get("disk", {}).get("transferred", 0))
            if info.get("status") in ("completed", "failed"):
                break
            if time.monotonic() - t > 120:
                mon.cmd("migrate_cancel")
                return {"status": "did not converge in 120 s"}
            time.sleep(0.01)
        wall = time.monotonic() - t
        if info["status"] != "completed":
            return {"status": info["status"], "error": info.get("error-desc")}
        while dmon.cmd("query-status")["status"] != "running":
            time.sleep(0.005)
        if workload == "abwalk":
            dst.wait_for(b"ABWALK pass", start=len(dst.out), timeout=30)  # the walk goes on
        else:
            dst.echo("MOVED")
        if b"ABWALK FAIL" in dst.out:
            return {"status": "ABWALK FAIL on the destination"}
        if workload == "disk":
            with open(src_disk, "rb") as a, open(dst_disk, "rb") as b:
                while True:
                    x, y = a.read(1 << 20), b.read(1 << 20)
                    if x != y:
                        return {"status": "the destination's disk differs"}
                    if not x:
                        break
        # rivet's ram.transferred counts the whole stream; QEMU's counts RAM only (the disk's last reported
        # count, a lower bound, is added).
        sent = info["ram"]["transferred"] + (disk_sent if kind == "qemu" else 0)
        return {"status": "completed", "total-time ms": info["total-time"], "downtime ms": info["downtime"],
                "transferred bytes": sent, "wall s": round(wall, 3),
                "throttle %": info.get("cpu-throttle-percentage", 0)}
    finally:
        src.kill()
        if dst:
            dst.kill()


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else None
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for workload in os.environ.get("WORKLOADS", "idle abwalk disk").split():
            for kind in ("rivet", "qemu"):
                runs = [one(kind, workload, work) for _ in range(REPEAT)]
                done = [r for r in runs if r["status"] == "completed"]
                row = {"completed": f"{len(done)}/{len(runs)}"}
                for key in ("total-time ms", "downtime ms", "transferred bytes", "wall s", "throttle %"):
                    if done:
                        row[key] = round(statistics.median(r[key] for r in done), 3)
                if len(done) < len(runs):
                    row["failures"] = [r for r in runs if r["status"] != "completed"]
                results[f"{workload} {kind}"] = row
                print(f"{workload:7} {kind:6} {row}", file=sys.stderr)
    print(f"guest {GUEST}, 256 MiB, 1 hart, max-bandwidth {BANDWIDTH} B/s, downtime-limit {DOWNTIME_LIMIT} ms, "
          f"median of {REPEAT}")
    keys = ["completed", "total-time ms", "downtime ms", "transferred bytes", "wall s", "throttle %"]
    print(f"{'':16}" + "".join(f"{k:>19}" for k in keys))
    for name, row in results.items():
        print(f"{name:16}" + "".join(f"{str(row.get(k, '-')):>19}" for k in keys))
    if out:
        with open(out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
