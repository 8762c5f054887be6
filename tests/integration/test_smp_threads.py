"""One host thread per hart (`rivet run --smp N`, --hart-threads multi by default): SMP Linux boots with every
hart online, a pthreads program in the guest gets exact counts from AMOs, LR/SC loops, a mutex and a spinlock
across 4 harts (in both threading modes), code rewritten on one hart runs new on another after fence.i,
QMP stop/cont and a snapshot taken while 4 harts are busy continue
the same program to its exact counts, and --icount with 2 harts (always one thread) stays byte-identical."""
import re
import subprocess

import pytest

from qmp_helpers import Machine, quit_and_close

MARKER = b"RIVET-GUEST: init reached"
PROMPT = b"# "


def append(cmd):
    return "console=ttyS0 rivet.run=" + cmd.replace(" ", ",")


def stress_counts(output):
    """The SMPSTRESS result lines of one run (name -> (got, expected))."""
    return {m.group(1): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"SMPSTRESS (\S+) (\d+) \(expected (\d+)\)", output)}


def assert_exact(output, names=9):
    counts = stress_counts(output)
    assert len(counts) == names, output[-3000:]
    wrong = {k: v for k, v in counts.items() if v[0] != v[1]}
    assert not wrong, f"counts differ across harts: {wrong}\n{output[-3000:]}"
    assert "SMPSTRESS PASS" in output


@pytest.mark.parametrize("attempt", range(3))
def test_four_hart_boot_brings_every_hart_online(rivet_run, guest_dir, attempt):
    r = rivet_run("--smp", "4", "--append", append("nproc; grep -c processor /proc/cpuinfo"), time_limit=90)
    assert r.returncode == 0, r.describe()
    after = r.stdout.split("run: nproc; grep -c processor /proc/cpuinfo", 1)[1]
    assert after.split()[:2] == ["4", "4"], r.describe()
    assert "run exit status 0" in r.stdout


@pytest.mark.parametrize("mode", ["multi", "single"])
def test_atomics_and_locks_across_four_harts_are_exact(rivet_run, guest_dir, mode):
    r = rivet_run("--smp", "4", "--hart-threads", mode, "--append", append("/bench/smpstress check 4 20000"),
                  time_limit=150)
    assert r.returncode == 0, r.describe()
    assert_exact(r.stdout)
    used = int(re.search(r"cpus-used=(\d+)", r.stdout).group(1))
    assert used >= 2, f"the 4 threads never ran on more than one hart\n{r.describe()}"
    assert "run exit status 0" in r.stdout


@pytest.mark.parametrize("mode", ["multi", "single"])
def test_code_rewritten_on_one_hart_runs_new_on_another(rivet_run, guest_dir, mode):
    # A thread pinned to CPU 0 rewrites a function and flushes the icache (Linux: remote fence.i through
    # SBI); a thread pinned to CPU 1 calls it each round. Hart 1's decoded blocks must be dropped by then.
    r = rivet_run("--smp", "2", "--hart-threads", mode, "--append", append("/bench/smpstress smc 2000"),
                  time_limit=120)
    assert r.returncode == 0, r.describe()
    assert "SMPSTRESS smc rounds=2000 failures=0 cpus-used=2" in r.stdout, r.describe()
    assert "SMPSTRESS PASS" in r.stdout


def test_stop_cont_and_snapshot_while_four_harts_are_busy(rivet_bin, guest_dir, tmp_path):
    snap = tmp_path / "busy.snap"
    m = Machine(rivet_bin, tmp_path / "a.sock", "--smp", "4", time_limit=150)
    m.wait_for(PROMPT, start=m.wait_for(MARKER))
    start = len(m.output)
    m.send(b"/bench/smpstress check 4 40000 > /tmp/out; echo stress-done-$((6*7))\n")
    mon = m.monitor()
    # Stop the world while the threads hammer shared memory: the machine reports paused and so do the harts.
    assert mon.cmd("stop") == {}
    assert mon.cmd("query-status")["status"] == "paused"
    assert [c["cpu-index"] for c in mon.cmd("query-cpus-fast")] == [0, 1, 2, 3]
    assert mon.cmd("cont") == {}
    assert mon.cmd("query-status")["status"] == "running"
    # Save the whole machine in the middle of the run, then end this process.
    assert mon.cmd("migrate", uri=f"file:{snap}") == {}
    info = mon.cmd("query-migrate")
    assert info["status"] == "completed", info
    quit_and_close(mon)
    assert m.finish() == 0, m.tail()
    assert b"stress-done-42" not in m.output[start:], "the program ended before the snapshot: make it longer"

    # The restored machine finishes the same program, from the middle, to exact counts.
    r = Machine(rivet_bin, tmp_path / "b.sock", "--smp", "4", "--incoming", f"file:{snap}", time_limit=150)
    r.wait_for(b"stress-done-42")
    begin = len(r.output)
    r.send(b"cat /tmp/out; echo shown-$((5*5))\n")
    r.wait_for(b"shown-25", start=begin + 10)
    assert_exact(r.output[begin:].decode("utf-8", "replace"))
    r.send(b"poweroff -f\n")
    assert r.finish() == 0, r.tail()


def test_icount_with_two_harts_is_byte_identical_in_either_mode(rivet_bin, guest_dir):
    # --icount always runs the harts on one thread, so --hart-threads multi changes nothing there.
    outputs = []
    for mode in ("multi", "single"):
        p = subprocess.run([str(rivet_bin), "run", "--icount", "--smp", "2", "--hart-threads", mode,
                            "--time-limit", "120", "--append", append("/bench/smpstress check 2 500")],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=150)
        assert p.returncode == 0, p.stderr.decode()
        outputs.append(p.stdout)
    assert_exact(outputs[0].decode())
    assert outputs[0] == outputs[1]


def test_a_bad_hart_threads_value_is_a_one_line_error(rivet_run, guest_dir):
    r = rivet_run("--smp", "2", "--hart-threads", "many", time_limit=10)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--hart-threads" in lines[0], r.describe()
    assert r.stdout == ""


def test_reboot_with_busy_harts_brings_all_four_back(rivet_session, guest_dir):
    # The guest's reset request reaches the machine's thread, which stops every hart thread, resets the
    # board and lets them run the firmware again; the secondary harts must come back online.
    s = rivet_session("--smp", "4", time_limit=150)
    s.wait_for(PROMPT, start=s.wait_for(MARKER))
    s.send(b"/bench/smpstress compute 4 100000000 & sleep 1; reboot\n")
    s.wait_for(PROMPT, start=s.wait_for(MARKER, count=2))
    start = len(s.output)
    command = b"echo harts-$(nproc)-online"
    s.send(command + b"\n")
    s.wait_for(b"harts-4-online", start=start + len(command))
    s.send(b"poweroff\n")
    code, out, err = s.finish()
    assert code == 0, out[-2000:] + err
    assert out.count("OpenSBI v") == 2, out[-3000:]
