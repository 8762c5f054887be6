"""Tests for bench/measure.py with stand-in VM commands (shell one-liners), so no emulator is needed.

Run: python3 -m pytest bench/tests
"""
import json
import os
import subprocess
import sys

import pytest

HELPER = os.path.join(os.path.dirname(__file__), "..", "measure.py")


def helper(*args, check=True):
    p = subprocess.run([sys.executable, HELPER, *args], capture_output=True, text=True, timeout=60)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def sample(*args):
    return json.loads(helper(*args).stdout)


def test_bench_line_and_rivet_stats_are_parsed():
    s = sample("run", "--value", "bench", "--tag", "vm=rivet", "--tag", "workload=sort", "--",
               "sh", "-c", "echo boot; echo 'BENCH sort 2.345 sorted:abc'; "
                           "echo 'RIVET-GUEST: run exit status 0'; "
                           "echo 'rivet: 1200 instructions in 0.500 s (0.0 MIPS)' >&2")
    assert s["value"] == 2.345
    assert s["bench_result"] == "sorted:abc"
    assert s["instructions"] == 1200 and s["rivet_seconds"] == 0.5
    assert s["vm"] == "rivet" and s["workload"] == "sort"
    assert "error" not in s


def test_failures_give_no_value():
    # no BENCH line
    s = sample("run", "--value", "bench", "--", "sh", "-c", "echo nothing")
    assert s["value"] is None and s["error"] == "no BENCH line"
    # the bench reports FAIL
    s = sample("run", "--value", "bench", "--", "sh", "-c", "echo 'BENCH sort 1.0 FAIL order'")
    assert s["value"] is None and "FAIL" in s["error"]
    # non-zero exit status of the VM
    s = sample("run", "--value", "exit", "--", "sh", "-c", "exit 3")
    assert s["value"] is None and s["error"] == "exit status 3"
    # the guest command failed although the VM powered off normally
    s = sample("run", "--value", "exit", "--", "sh", "-c", "echo 'RIVET-GUEST: run exit status 1'")
    assert s["value"] is None and "guest command" in s["error"]


def test_marker_time_and_kill():
    s = sample("run", "--value", "marker", "--marker", "init reached", "--timeout", "20", "--",
               "sh", "-c", "sleep 0.3; echo 'RIVET-GUEST: init reached'; sleep 30")
    assert 0.25 <= s["value"] < 5  # killed at the marker, not after the sleep 30


def test_missing_marker_times_out():
    s = sample("run", "--value", "marker", "--marker", "never", "--timeout", "0.5", "--", "sh", "-c", "sleep 10")
    assert s["value"] is None and "not seen" in s["error"]


def test_dd_seconds_from_uptime_readings():
    s = sample("run", "--value", "dd", "--", "sh", "-c", "echo 'DDTIME 1.34 0.00 3.86 0.00'")
    assert s["value"] == pytest.approx(2.52)


def test_idle_measures_cpu_of_a_busy_and_a_waiting_process():
    busy = sample("idle", "--settle", "0.1", "--window", "1", "--",
                  "sh", "-c", "echo 'RIVET-GUEST: init reached'; while :; do :; done")
    # A busy loop gets a full core on a quiet host but only a share under load (42 % seen at load 7 on
    # 2 cores), so the bound only has to separate it from the waiting process.
    assert busy["value"] > 15
    idle = sample("idle", "--settle", "0.1", "--window", "1", "--",
                  "sh", "-c", "echo 'RIVET-GUEST: init reached'; cat >/dev/null")
    assert idle["value"] < 10


def test_bad_options_are_one_line_errors():
    p = helper("run", "--value", "bogus", "--", "true", check=False)
    assert p.returncode == 2 and p.stderr.count("\n") == 1
    p = helper("run", "--value", "exit", "--timeout", "-1", "--", "true", check=False)
    assert p.returncode == 2
    p = helper("run", "--value", "exit", check=False)
    assert p.returncode == 2 and "no command" in p.stderr


def test_report_medians_ratios_and_result_check(tmp_path):
    samples = tmp_path / "s.jsonl"
    rows = [{"kind": "meta", "date": "today", "host_cores": 2}]
    for v in (3.0, 1.0, 2.0):
        rows.append({"vm": "rivet", "workload": "sort", "value": v, "bench_result": "x", "mips": 100.0})
    for v in (1.0, 0.5, 2.0):
        rows.append({"vm": "qemu", "workload": "sort", "value": v, "bench_result": "x"})
    rows.append({"vm": "rivet", "workload": "nbody", "value": 4.0, "bench_result": "a"})
    rows.append({"vm": "qemu", "workload": "nbody", "value": 2.0, "bench_result": "b"})
    samples.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.json"
    p = helper("report", str(samples), str(out), check=False)
    assert p.returncode == 1  # nbody results differ
    data = json.loads(out.read_text())
    sort = next(w for w in data["workloads"] if w["workload"] == "sort")
    assert sort["rivet"] == 2.0 and sort["qemu"] == 1.0 and sort["ratio"] == 2.0
    assert sort["results_match"] is True
    nbody = next(w for w in data["workloads"] if w["workload"] == "nbody")
    assert nbody["results_match"] is False
    assert "RESULTS DIFFER" in p.stdout
    assert data["date"] == "today"


def test_report_with_one_column_per_accelerator(tmp_path):
    samples = tmp_path / "s.jsonl"
    rows = []
    for vm, v in (("rivet-jit", 0.5), ("rivet-interp", 4.0), ("qemu", 1.0)):
        rows.append({"vm": vm, "workload": "interp", "value": v, "bench_result": "acc:1"})
    for vm, v in (("rivet-jit", 0.8), ("rivet-interp", None), ("qemu", 0.4)):
        rows.append({"vm": vm, "workload": "poweroff", "value": v, **({"error": "timed out"} if v is None else {})})
    samples.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.json"
    p = helper("report", str(samples), str(out), check=False)
    assert p.returncode == 1  # the interp poweroff run failed
    data = json.loads(out.read_text())
    assert data["rivet_variants"] == ["rivet-jit", "rivet-interp"]
    interp = next(w for w in data["workloads"] if w["workload"] == "interp")
    by_vm = {v["vm"]: v for v in interp["variants"]}
    assert by_vm["rivet-jit"]["ratio"] == 0.5 and by_vm["rivet-interp"]["ratio"] == 4.0
    assert interp["results_match"] is True
    assert "rivet-jit/qemu" in p.stdout and "rivet-interp/qemu" in p.stdout
    summary = p.stdout[p.stdout.index("# summary:"):].splitlines()
    assert summary[0] == "# summary: workload rivet-jit rivet-interp qemu rivet-jit/qemu rivet-interp/qemu"
    assert summary[1] == "interp 0.500 4.000 1.000 0.50 4.00"
    assert summary[2] == "poweroff 0.800 - 0.400 2.00 -"
    assert "FAILED rivet-interp: timed out" in p.stdout


def test_report_flags_a_result_that_differs_between_accelerators(tmp_path):
    samples = tmp_path / "s.jsonl"
    rows = [{"vm": "rivet-jit", "workload": "lists", "value": 1.0, "bench_result": "check:2"},
            {"vm": "rivet-interp", "workload": "lists", "value": 3.0, "bench_result": "check:1"},
            {"vm": "qemu", "workload": "lists", "value": 1.0, "bench_result": "check:1"}]
    samples.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out.json"
    p = helper("report", str(samples), str(out), check=False)
    assert p.returncode == 1 and "RESULTS DIFFER" in p.stdout
