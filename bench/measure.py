#!/usr/bin/env python3
"""Helper for bench/run.sh: runs one VM process and measures it, or turns the collected samples into
the result table and JSON.

  measure.py run  --value KIND [--marker TEXT] [--timeout S] [--log FILE] [--tag k=v ...] -- CMD...
  measure.py idle [--settle S] [--window S] [--timeout S] [--log FILE] [--tag k=v ...] -- CMD...
  measure.py report SAMPLES.jsonl OUT.json

`run` prints one JSON object (a sample) on stdout. KIND chooses the sample's `value`:
  marker   seconds from process start to the first output line containing --marker (the VM is then killed)
  exit     seconds from process start to process exit
  bench    the seconds of the guest's `BENCH <name> <seconds> <result>` line
  dd       seconds between the two /proc/uptime readings of the guest's `DDTIME <s> <idle> <e> <idle>` line
Every sample also carries what could be parsed from the output: the BENCH result, rivet's
`rivet: N instructions in S s (M MIPS)` statistics line, the guest's run exit status.

`idle` starts the VM with a standard input pipe that stays open (an interactive shell that waits), waits
for `RIVET-GUEST: init reached` plus --settle seconds, then reads the process's utime+stime from
/proc/PID/stat over --window seconds and reports CPU use in percent of one core.
"""
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

STATS_RE = re.compile(r"rivet: (\d+) instructions in ([0-9.]+) s \(([0-9.]+) MIPS\)")
BENCH_RE = re.compile(r"^BENCH (\S+) ([0-9.]+) (.*)$")
DD_RE = re.compile(r"^DDTIME ([0-9.]+) [0-9.]+ ([0-9.]+) [0-9.]+\s*$")
STATUS_RE = re.compile(r"RIVET-GUEST: run exit status (\d+)")
INIT_MARKER = "RIVET-GUEST: init reached"


def fail(msg):
    print(f"measure.py: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv, options):
    """Tiny parser: --name value pairs until `--`, then the command. Repeated --tag collect into a list."""
    opts = {"tag": []}
    i = 0
    while i < len(argv) and argv[i] != "--":
        name = argv[i]
        if not name.startswith("--") or name[2:] not in options:
            fail(f"unknown option {name}")
        if i + 1 >= len(argv):
            fail(f"{name} needs a value")
        if name == "--tag":
            opts["tag"].append(argv[i + 1])
        else:
            opts[name[2:]] = argv[i + 1]
        i += 2
    cmd = argv[i + 1:]
    if not cmd:
        fail("no command after --")
    return opts, cmd


def tags_of(opts):
    tags = {}
    for t in opts["tag"]:
        k, sep, v = t.partition("=")
        if not sep or not k:
            fail(f"bad --tag {t!r} (want key=value)")
        tags[k] = v
    return tags


def positive_float(opts, name, default):
    raw = opts.get(name, default)
    try:
        v = float(raw)
    except ValueError:
        fail(f"--{name} must be a number, got {raw!r}")
    if not v > 0:
        fail(f"--{name} must be positive")
    return v


class Runner:
    """One VM process with its merged output collected line by line in a reader thread."""

    def __init__(self, cmd, log_path, stdin, markers):
        self.lines = []
        self.marker_times = {}
        self.watch = list(markers)  # fixed before the reader starts, so no line is missed
        self.lock = threading.Lock()
        self.log = open(log_path, "w") if log_path else None
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            now = time.monotonic() - self.t0
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self.lock:
                self.lines.append(line)
                for m in self.watch:
                    if m not in self.marker_times and m in line:
                        self.marker_times[m] = now
            if self.log:
                self.log.write(f"{now:9.3f} {line}\n")
        if self.log:
            self.log.flush()

    def wait_marker(self, marker, deadline):
        while time.monotonic() < deadline:
            with self.lock:
                if marker in self.marker_times:
                    return self.marker_times[marker]
            if self.proc.poll() is not None and not self.reader.is_alive():
                return None
            time.sleep(0.005)
        return None

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.reader.join(timeout=5)

    def wait_exit(self, deadline):
        try:
            self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return None
        t = time.monotonic() - self.t0
        self.reader.join(timeout=5)
        return t


def parse_output(lines):
    info = {}
    for line in lines:
        if m := STATS_RE.search(line):
            info["instructions"] = int(m.group(1))
            info["rivet_seconds"] = float(m.group(2))
            info["mips"] = float(m.group(3))
        elif m := BENCH_RE.match(line):
            info["bench_name"] = m.group(1)
            info["bench_seconds"] = float(m.group(2))
            info["bench_result"] = m.group(3)
        elif m := DD_RE.match(line):
            info["dd_seconds"] = round(float(m.group(2)) - float(m.group(1)), 3)
        elif m := STATUS_RE.search(line):
            info["guest_status"] = int(m.group(1))
    return info


def cmd_run(argv):
    opts, cmd = parse_args(argv, {"value", "marker", "timeout", "log", "tag"})
    kind = opts.get("value")
    if kind not in ("marker", "exit", "bench", "dd"):
        fail("--value must be one of marker, exit, bench, dd")
    if kind == "marker" and not opts.get("marker"):
        fail("--value marker needs --marker")
    timeout = positive_float(opts, "timeout", "600")
    sample = dict(tags_of(opts))
    r = Runner(cmd, opts.get("log"), subprocess.DEVNULL, [opts["marker"]] if kind == "marker" else [])
    deadline = r.t0 + timeout
    error = None
    value = None
    if kind == "marker":
        value = r.wait_marker(opts["marker"], deadline)
        if value is None:
            error = f"marker {opts['marker']!r} not seen"
        r.kill()
        rc = None
    else:
        t = r.wait_exit(deadline)
        if t is None:
            error = f"timed out after {timeout:g} s"
            r.kill()
        rc = r.proc.returncode
        info = parse_output(r.lines)
        sample.update(info)
        if error is None:
            if kind == "exit":
                value = t
            elif kind == "bench":
                value = info.get("bench_seconds")
                if value is None:
                    error = "no BENCH line"
                elif "FAIL" in info.get("bench_result", ""):
                    error = "bench reported FAIL"
            elif kind == "dd":
                value = info.get("dd_seconds")
                if value is None:
                    error = "no DDTIME line"
            if error is None and rc != 0:
                error = f"exit status {rc}"
            if error is None and "guest_status" in info and info["guest_status"] != 0:
                error = f"guest command exit status {info['guest_status']}"
        sample["wall_seconds"] = t
    sample["exit_status"] = rc
    sample["value"] = round(value, 4) if value is not None and error is None else None
    if error:
        sample["error"] = error
        tail = "\n".join(r.lines[-5:])
        print(f"measure.py: {' '.join(cmd[:2])}: {error}; last output:\n{tail}", file=sys.stderr)
    print(json.dumps(sample))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    rest = data[data.rindex(")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def cmd_idle(argv):
    opts, cmd = parse_args(argv, {"settle", "window", "timeout", "log", "tag"})
    settle = positive_float(opts, "settle", "3")
    window = positive_float(opts, "window", "10")
    timeout = positive_float(opts, "timeout", "300")
    sample = dict(tags_of(opts))
    r = Runner(cmd, opts.get("log"), subprocess.PIPE, [INIT_MARKER])  # the pipe stays open: the guest shell just waits
    error = None
    value = None
    if r.wait_marker(INIT_MARKER, r.t0 + timeout) is None:
        error = "guest did not reach init"
    else:
        time.sleep(settle)
        if r.proc.poll() is not None:
            error = f"VM exited early (status {r.proc.returncode})"
        else:
            hz = os.sysconf("SC_CLK_TCK")
            t1, c1 = time.monotonic(), cpu_ticks(r.proc.pid)
            time.sleep(window)
            t2, c2 = time.monotonic(), cpu_ticks(r.proc.pid)
            value = 100.0 * (c2 - c1) / hz / (t2 - t1)
            sample["cpu_seconds"] = (c2 - c1) / hz
            sample["window_seconds"] = round(t2 - t1, 3)
    r.proc.stdin.close()  # EOF: rivet's guest shell exits and powers off; QEMU is killed below
    if r.wait_exit(time.monotonic() + 5) is None:
        r.kill()
    sample["value"] = round(value, 2) if value is not None else None
    if error:
        sample["error"] = error
        print(f"measure.py: {' '.join(cmd[:2])}: {error}", file=sys.stderr)
    print(json.dumps(sample))


# ---- report -------------------------------------------------------------------------------------------

UNITS = {"idle": "% CPU"}


def median_or_none(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=3):
    return "-" if v is None else f"{v:.{digits}f}"


def is_rivet(vm):
    """Rivet samples are tagged `rivet`, or `rivet-MODE` when run.sh was given --accel (one per mode)."""
    return vm == "rivet" or (isinstance(vm, str) and vm.startswith("rivet-") and len(vm) > 6)


def cmd_report(argv):
    if len(argv) != 2:
        fail("usage: measure.py report SAMPLES.jsonl OUT.json")
    samples_path, out_path = argv
    samples = []
    with open(samples_path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                samples.append(json.loads(line))
            except json.JSONDecodeError as e:
                fail(f"{samples_path}:{n}: bad JSON ({e})")
    meta = {}
    order = []
    variants = []  # rivet vm names in first-seen order: ["rivet"] or e.g. ["rivet-jit", "rivet-interp"]
    groups = {}
    for s in samples:
        if s.get("kind") == "meta":
            meta.update({k: v for k, v in s.items() if k != "kind"})
            continue
        w = s.get("workload")
        vm = s.get("vm")
        if w is None or not (vm == "qemu" or is_rivet(vm)):
            fail(f"sample without workload/vm tags: {s}")
        if is_rivet(vm) and vm not in variants:
            variants.append(vm)
        if w not in groups:
            groups[w] = {"label": s.get("label", w), "qemu": []}
            order.append(w)
        groups[w].setdefault(vm, []).append(s)
    if not variants:
        variants = ["rivet"]

    rows = []
    for w in order:
        g = groups[w]
        q = median_or_none([s.get("value") for s in g["qemu"]])
        per_variant = []
        for vm in variants:
            vs = g.get(vm, [])
            r = median_or_none([s.get("value") for s in vs])
            per_variant.append({
                "vm": vm,
                "value": r,
                "ratio": (r / q) if r is not None and q else None,
                "mips": median_or_none([s.get("mips") for s in vs]),
                "samples": [s.get("value") for s in vs],
            })
        all_rivet = [s for vm in variants for s in g.get(vm, [])]
        results = {vm: {s.get("bench_result") for s in g.get(vm, []) if s.get("bench_result")}
                   for vm in variants + ["qemu"]}
        match = None
        present = [r for r in results.values() if r]
        if results["qemu"] and any(results[vm] for vm in variants):
            union = set().union(*present)
            match = len(union) == 1
        errors = sorted({f"{s['vm']}: {s['error']}" for s in all_rivet + g["qemu"] if s.get("error")})
        first = per_variant[0]
        rows.append({
            "workload": w,
            "label": g["label"],
            "unit": UNITS.get(w, "s"),
            # The first rivet variant, under the names the single-variant report always used.
            "rivet": first["value"],
            "qemu": q,
            "ratio": first["ratio"],
            "rivet_mips": first["mips"],
            "mips_scope": next((s.get("mips_scope") for s in all_rivet), None),
            "results_match": match,
            "rivet_samples": first["samples"],
            "qemu_samples": [s.get("value") for s in g["qemu"]],
            "variants": per_variant,
            "errors": errors,
        })

    if meta:
        print(f"# {meta.get('date', '?')}; host {meta.get('host_cpu', '?')}, {meta.get('host_cores', '?')} cores; "
              f"{meta.get('qemu', '?')}; {meta.get('repetitions', '?')} repetition(s), median shown; "
              f"load average {fmt(meta.get('load_average_start'), 2)} at start, {fmt(meta.get('load_average_end'), 2)} at end")
        print(f"# rivet: {meta.get('rivet_bin', '?')} (built {meta.get('rivet_built', '?')}, "
              f"sha256 {meta.get('rivet_sha256_prefix', '?')}...)")
    width = max([9] + [len(vm) for vm in variants])
    head = f"{'workload':<34} {'unit':>6} " + " ".join(f"{vm:>{width}}" for vm in variants) + f" {'qemu':>9} "
    head += " ".join(f"{vm + '/qemu':>{max(10, len(vm) + 5)}}" for vm in variants)
    head += " " + " ".join(f"{(vm + ' MIPS'):>{max(11, len(vm) + 5)}}" for vm in variants) + "  notes"
    print(head)
    print("-" * len(head))
    for row in rows:
        notes = []
        if row["rivet_mips"] is not None and row["mips_scope"]:
            notes.append(f"MIPS: {row['mips_scope']}")
        if row["results_match"] is False:
            notes.append("RESULTS DIFFER")
        elif row["results_match"]:
            notes.append("results match")
        notes += [f"FAILED {e}" for e in row["errors"]]
        digits = 1 if row["unit"] == "% CPU" else 3
        line = f"{row['label']:<34} {row['unit']:>6} "
        line += " ".join(f"{fmt(v['value'], digits):>{width}}" for v in row["variants"])
        line += f" {fmt(row['qemu'], digits):>9} "
        line += " ".join(f"{fmt(v['ratio'], 2):>{max(10, len(v['vm']) + 5)}}" for v in row["variants"])
        line += " " + " ".join(f"{fmt(v['mips'], 1):>{max(11, len(v['vm']) + 5)}}" for v in row["variants"])
        print(f"{line}  {'; '.join(notes)}")
    # The compact form: one line per workload, easy to paste or diff between runs.
    print()
    print("# summary: workload " + " ".join(variants) + " qemu " + " ".join(f"{vm}/qemu" for vm in variants))
    for row in rows:
        digits = 1 if row["unit"] == "% CPU" else 3
        print(" ".join([row["workload"]] + [fmt(v["value"], digits) for v in row["variants"]]
                       + [fmt(row["qemu"], digits)] + [fmt(v["ratio"], 2) for v in row["variants"]]))
    out = dict(meta)
    out["rivet_variants"] = variants
    out["workloads"] = rows
    out["samples"] = [s for s in samples if s.get("kind") != "meta"]
    tmp = out_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    os.replace(tmp, out_path)
    failed = any(row["errors"] or row["results_match"] is False for row in rows)
    return 1 if failed else 0


def main():
    if len(sys.argv) < 2:
        fail("usage: measure.py run|idle|report ...")
    sub, argv = sys.argv[1], sys.argv[2:]
    if sub == "run":
        cmd_run(argv)
    elif sub == "idle":
        cmd_idle(argv)
    elif sub == "report":
        sys.exit(cmd_report(argv))
    else:
        fail(f"unknown subcommand {sub!r}")


if __name__ == "__main__":
    main()
