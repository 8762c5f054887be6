#!/usr/bin/env python3
"""Failover costs (docs/failover.md), measured with rivet alone on loopback:

1. Guest slowdown while replicating, at checkpoint periods 20, 50 and 200 ms, against the same program
   unreplicated: intloop (CPU-bound; its own BENCH seconds), memwalk (fills 64 MiB, then pointer-chases;
   its BENCH seconds) and abwalk (writes one byte in every page of 32 MiB per pass, flat out; host time
   from "ABWALK start" to "ABWALK done"). Alongside: checkpoints per second, checkpoint size (median and
   max of query-replication's last-checkpoint-bytes, sampled) and the longest capture pause.
2. Takeover time: seqdisk running replicated; the primary is killed (SIGKILL) and the clock runs until
   the standby's first console byte.

Usage: bench/failover.py [OUT.json]   (env: RIVET_BIN, RIVET_GUEST, REPEAT (default 3), PERIODS,
TAKEOVERS (default 5)). `bench/failover.py --soak N` runs tests/integration/test_failover.py with N kill
trials instead (the documented soak run).
"""
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RIVET = os.environ.get("RIVET_BIN", os.path.join(HERE, "..", ".build", "release", "rivet"))
MEMORY = "128M"
REPEAT = int(os.environ.get("REPEAT", "3"))
PERIODS = [int(p) for p in os.environ.get("PERIODS", "20,50,200").split(",")]
TAKEOVERS = int(os.environ.get("TAKEOVERS", "5"))
WORKLOADS = {
    "intloop": "/bench/intloop,2000000",
    "memwalk": "/bench/memwalk",
    "abwalk": "/bench/abwalk,32,100",
}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class QMP:
    def __init__(self, path, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise EOFError
            m = json.loads(line)
            if "event" not in m:
                return m.get("return", m)


def run_workload(command, period, tmp):
    """Runs one workload to its power-off; with `period`, replicated to a standby. Returns
    (seconds, samples of query-replication)."""
    args = [RIVET, "run", "--memory", MEMORY, "--append", f"console=ttyS0 rivet.run={command}"]
    standby = None
    samples = []
    if period:
        port = free_port()
        standby = subprocess.Popen([RIVET, "run", "--memory", MEMORY, "--incoming", f"tcp:127.0.0.1:{port}", "--standby"],
                                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.3)
        sock = os.path.join(tmp, f"p{port}.sock")
        args += ["--replicate", f"tcp:127.0.0.1:{port},period-ms={period}", "--qmp", f"unix:{sock},server=on,wait=off"]
    primary = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if period:
        def sample():
            try:
                q = QMP(sock)
                while primary.poll() is None:
                    samples.append((time.monotonic(), q.cmd("query-replication")))
                    time.sleep(0.025)
            except (OSError, EOFError, ValueError):
                pass
        threading.Thread(target=sample, daemon=True).start()
    out = b""
    marks = {}
    while True:
        chunk = primary.stdout.read1(65536)
        if not chunk:
            break
        out += chunk
        for key in (b"ABWALK start", b"ABWALK done"):
            if key in out and key not in marks:
                marks[key] = time.monotonic()
    primary.wait()
    if standby:
        standby.wait(timeout=30)
    m = re.search(rb"BENCH \S+ ([\d.]+)", out)
    if m:
        return float(m.group(1)), samples
    if b"ABWALK done" in marks and b"ABWALK start" in marks:
        return marks[b"ABWALK done"] - marks[b"ABWALK start"], samples
    raise RuntimeError(f"{command}: no result\n{out[-2000:].decode(errors='replace')}\n{primary.stderr.read().decode()}")


def summarize(samples):
    infos = [s[1] for s in samples if s[1].get("status") == "replicating"]
    if not infos:
        return {}
    sizes = [i["last-checkpoint-bytes"] for i in infos]
    first, last = infos[0], infos[-1]
    span = samples[-1][0] - samples[0][0]
    return {
        "checkpoints_per_s": round((last["checkpoints"] - first["checkpoints"]) / max(span, 1e-3), 1),
        "checkpoint_bytes_median": int(statistics.median(sizes)),
        "checkpoint_bytes_max": max(sizes),
        "max_pause_ms": round(last["max-pause-us"] / 1000, 2),
    }


def takeover_once(tmp):
    port = free_port()
    disks = []
    for name in ("p", "s"):
        path = os.path.join(tmp, f"{name}{port}.img")
        with open(path, "wb") as f:
            f.truncate(16 << 20)
        disks.append(path)
    standby = subprocess.Popen([RIVET, "run", "--memory", MEMORY, "--drive", f"{disks[1]},format=raw",
                                "--incoming", f"tcp:127.0.0.1:{port}", "--standby"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.3)
    primary = subprocess.Popen([RIVET, "run", "--memory", MEMORY, "--drive", f"{disks[0]},format=raw",
                                "--append", "console=ttyS0 rivet.run=/bench/seqdisk,/dev/vda",
                                "--replicate", f"tcp:127.0.0.1:{port}"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = b""
    while out.count(b"ACK ") < 200:
        chunk = primary.stdout.read1(65536)
        if not chunk:
            raise RuntimeError("primary ended early")
        out += chunk
    t0 = time.monotonic()
    primary.kill()
    first = standby.stdout.read1(1)
    t1 = time.monotonic()
    primary.wait()
    standby.kill()
    standby.wait()
    if not first:
        raise RuntimeError("standby printed nothing")
    return (t1 - t0) * 1000


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--soak":
        env = dict(os.environ, RIVET_FAILOVER_TRIALS=sys.argv[2], RIVET_BIN=os.path.abspath(RIVET))
        sys.exit(subprocess.call([sys.executable, "-m", "pytest", "-q", "-k", "random_moments",
                                  os.path.join(HERE, "..", "tests", "integration", "test_failover.py")], env=env))
    out_path = sys.argv[1] if len(sys.argv) > 1 else None
    results = {"slowdown": {}, "takeover_ms": []}
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in WORKLOADS.items():
            # Rounds of (unreplicated, each period) back to back, so load from elsewhere hits all alike.
            times = {None: [], **{p: [] for p in PERIODS}}
            infos = {}
            for _ in range(REPEAT):
                for period in [None] + PERIODS:
                    secs, samples = run_workload(command, period, tmp)
                    times[period].append(secs)
                    if period:
                        infos[period] = summarize(samples)
            base = statistics.median(times[None])
            row = {"unreplicated_s": round(base, 3), "unreplicated_runs": times[None]}
            print(f"{name}: unreplicated {base:.3f} s {times[None]}", flush=True)
            for period in PERIODS:
                secs = statistics.median(times[period])
                row[f"{period}ms"] = {"seconds": round(secs, 3), "runs": times[period],
                                      "slowdown_pct": round((secs / base - 1) * 100, 1), **infos[period]}
                print(f"{name}: period {period} ms: {secs:.3f} s ({(secs / base - 1) * 100:+.1f} %) {times[period]} {infos[period]}", flush=True)
            results["slowdown"][name] = row
        for _ in range(TAKEOVERS):
            ms = takeover_once(tmp)
            results["takeover_ms"].append(round(ms, 1))
            print(f"takeover: {ms:.1f} ms", flush=True)
    results["takeover_ms_median"] = statistics.median(results["takeover_ms"])
    print(json.dumps(results, indent=1))
    if out_path:
        with open(out_path, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
