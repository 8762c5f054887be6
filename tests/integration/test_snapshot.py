"""Whole-machine snapshots: QMP migrate to file: and exec:, `--incoming`, `-S`, a shell and a disk that
continue where they were, exact continuation under --icount (1 and 2 harts, virtio-blk reads in flight,
queued UART input), configuration mismatches and bad streams (one line, nonzero exit, no guest output),
and saves that fail without leaving a torn file."""
import hashlib
import os
import socket
import struct
import subprocess
import time

import pytest

from qmp_helpers import Machine, quit_and_close, wait_event

MARKER = b"RIVET-GUEST: init reached"
PROMPT = b"# "


def ask(m, command, answer):
    start = len(m.output)
    m.send(command + b"\n")
    return m.wait_for(answer, start=start + len(command))


def save(mon, uri):
    assert mon.cmd("migrate", uri=uri) == {}
    info = mon.cmd("query-migrate")
    assert info["status"] == "completed", info
    return info


def make_disk(path, size="16M"):
    subprocess.run(["truncate", "-s", size, str(path)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True, timeout=60)


def test_shell_and_disk_continue_after_file_snapshot_and_restore(rivet_bin, guest_dir, tmp_path):
    disk = tmp_path / "d.img"
    make_disk(disk)
    snap = tmp_path / "vm.snap"
    m = Machine(rivet_bin, tmp_path / "a.sock", "--drive", f"{disk},format=raw")
    m.wait_for(PROMPT, start=m.wait_for(MARKER))
    ask(m, b"mkdir -p /mnt && mount /dev/vda /mnt && echo before-snap > /mnt/f && echo mounted-$((1+1))", b"mounted-2")
    mon = m.monitor()
    info = save(mon, f"file:{snap}")
    assert info["ram"]["total"] == 256 << 20 and info["ram"]["transferred"] == snap.stat().st_size
    assert mon.cmd("query-status")["status"] == "postmigrate"
    events = [(e["event"], e.get("data", {}).get("status")) for e in mon.get_events(wait=False)]
    assert events == [("MIGRATION", "setup"), ("STOP", None), ("MIGRATION", "active"), ("MIGRATION", "completed")]
    quit_and_close(mon)
    assert m.finish() == 0, m.tail()
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p], "no temporary file is left beside the snapshot"

    r = Machine(rivet_bin, tmp_path / "b.sock", "--drive", f"{disk},format=raw", "--incoming", f"file:{snap}")
    ask(r, b"cat /mnt/f; echo restored-$((2+3))", b"restored-5")
    assert b"before-snap" in r.output
    ask(r, b"echo after-restore >> /mnt/f; sync; umount /mnt; echo done-$((3*3))", b"done-9")
    r.send(b"poweroff -f\n")
    assert r.finish() == 0, r.tail()
    p = subprocess.run(["debugfs", "-R", "cat /f", str(disk)], capture_output=True, text=True, timeout=60)
    assert p.stdout == "before-snap\nafter-restore\n"


def test_exec_uris_and_start_paused(rivet_bin, guest_dir, tmp_path):
    snap = tmp_path / "vm.snap"
    m = Machine(rivet_bin, tmp_path / "a.sock")
    m.wait_for(PROMPT, start=m.wait_for(MARKER))
    mon = m.monitor()
    mon.cmd("stop")
    save(mon, f"exec:cat > {snap}")
    assert mon.cmd("query-status")["status"] == "paused"
    quit_and_close(mon)
    assert m.finish() == 0, m.tail()

    r = Machine(rivet_bin, tmp_path / "b.sock", "-S", "--incoming", f"exec:cat {snap}")
    mon = r.monitor()
    assert mon.cmd("query-status")["status"] == "paused"
    mon.cmd("cont")
    ask(r, b"echo from-exec-$((4*4))", b"from-exec-16")
    # exec: that fails is a failed migration, answered as an error; the machine stays usable.
    with pytest.raises(Exception):
        mon.cmd("migrate", uri="exec:exit 3")
    assert mon.cmd("query-migrate")["status"] == "failed"
    # tcp: runs in the background; nobody listening is a failed migration and the machine stays usable.
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    assert mon.cmd("migrate", uri=f"tcp:127.0.0.1:{closed.getsockname()[1]}") == {}
    deadline = time.monotonic() + 30
    while (info := mon.cmd("query-migrate"))["status"] not in ("failed", "completed"):
        assert time.monotonic() < deadline, info
        time.sleep(0.02)
    closed.close()
    assert info["status"] == "failed" and "cannot connect" in info["error-desc"], info
    mon.cmd("cont")
    ask(r, b"echo still-$((5*5))", b"still-25")
    mon.close()
    r.send(b"poweroff -f\n")
    assert r.finish() == 0, r.tail()


@pytest.fixture(scope="module")
def snapshot_file(rivet_bin, guest_dir, tmp_path_factory):
    """A snapshot of the default guest at its shell, with one 16 MiB raw drive."""
    d = tmp_path_factory.mktemp("snap")
    disk = d / "d.img"
    make_disk(disk)
    snap = d / "vm.snap"
    m = Machine(rivet_bin, d / "q.sock", "--drive", f"{disk},format=raw")
    m.wait_for(PROMPT, start=m.wait_for(MARKER))
    mon = m.monitor()
    save(mon, f"file:{snap}")
    quit_and_close(mon)
    assert m.finish() == 0, m.tail()
    return snap, disk


def incoming(rivet_bin, stream, *args):
    p = subprocess.run([str(rivet_bin), "run", "--time-limit", "20", "--incoming", f"file:{stream}", *map(str, args)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    return p.returncode, p.stdout, p.stderr.decode()


def assert_refused(result, *words):
    code, out, err = result
    assert code == 1, (code, err)
    assert out == b"", "no guest output from a refused stream"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], err


def test_configuration_mismatches_are_refused(rivet_bin, snapshot_file, tmp_path):
    snap, disk = snapshot_file
    assert_refused(incoming(rivet_bin, snap, "--drive", f"{disk},format=raw", "--memory", "512M"), "--memory 256M", "512M")
    assert_refused(incoming(rivet_bin, snap, "--drive", f"{disk},format=raw", "--smp", "2"), "--smp 1")
    assert_refused(incoming(rivet_bin, snap), "drive")
    other = tmp_path / "small.img"
    subprocess.run(["truncate", "-s", "8M", str(other)], check=True)
    assert_refused(incoming(rivet_bin, snap, "--drive", f"{other},format=raw"), "drive 0")
    q = tmp_path / "q.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(q), "16M"], check=True)
    assert_refused(incoming(rivet_bin, snap, "--drive", f"{q},format=qcow2"), "qcow2")
    assert_refused(incoming(rivet_bin, snap, "--drive", f"{disk},format=raw", "--icount"), "--icount")


def test_bad_streams_are_one_line_errors(rivet_bin, snapshot_file, tmp_path):
    snap, disk = snapshot_file
    data = snap.read_bytes()
    cases = {
        "truncated-header": data[:6],
        "truncated-middle": data[:len(data) // 2],
        "truncated-end": data[:-3],
        "garbage": os.urandom(100000),
        "empty": b"",
        "wrong-version": data[:8] + struct.pack("<I", 99) + data[12:],
    }
    for at in (20, 40, len(data) // 3, len(data) - 100):
        flipped = bytearray(data)
        flipped[at] ^= 0x10
        cases[f"bit-flip-{at}"] = bytes(flipped)
    for name, content in cases.items():
        f = tmp_path / name
        f.write_bytes(content)
        code, out, err = incoming(rivet_bin, f, "--drive", f"{disk},format=raw")
        assert code == 1, (name, code, err)
        assert out == b"", name
        assert len(err.strip().splitlines()) == 1, (name, err)
    code, out, err = incoming(rivet_bin, tmp_path / "wrong-version", "--drive", f"{disk},format=raw")
    assert "version 99" in err
    code, out, err = incoming(rivet_bin, tmp_path / "garbage", "--drive", f"{disk},format=raw")
    assert "not a rivet machine-state stream" in err


def test_a_failed_save_leaves_the_old_snapshot_intact(rivet_bin, guest_dir, tmp_path):
    # A 4 MiB tmpfs cannot hold a snapshot: the save fails with ENOSPC part-way through.
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], check=True)
    try:
        target = small / "vm.snap"
        target.write_bytes(b"old snapshot")
        m = Machine(rivet_bin, tmp_path / "a.sock")
        m.wait_for(PROMPT, start=m.wait_for(MARKER))
        mon = m.monitor()
        with pytest.raises(Exception) as e:
            mon.cmd("migrate", uri=f"file:{target}")
        assert "No space left" in str(e.value) or "write failed" in str(e.value)
        assert target.read_bytes() == b"old snapshot"
        assert os.listdir(small) == ["vm.snap"], "the partial temporary file is removed"
        mon.cmd("cont")
        ask(m, b"echo survived-$((7*7))", b"survived-49")
        mon.close()
        m.send(b"poweroff -f\n")
        assert m.finish() == 0, m.tail()
    finally:
        subprocess.run(["umount", str(small)], check=False)


# ---------------------------------------------------------------- exactness under --icount


def run_to_end(rivet_bin, args, stdin_path):
    """An uninterrupted --icount run to the guest's power-off: console output and the final RAM hash."""
    with open(stdin_path, "rb") as stdin:
        p = subprocess.run([str(rivet_bin), "run", "--time-limit", "120", "--icount", "--x-ram-hash", *args],
                           stdin=stdin, capture_output=True, timeout=180)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout, ram_hash(p.stderr.decode())


def ram_hash(stderr):
    lines = [l for l in stderr.splitlines() if l.startswith("rivet: ram-hash ")]
    assert len(lines) == 1, stderr
    return lines[0].split()[2]


def split_run(rivet_bin, tmp_path, args, stdin_path, pause_at=None, stop_after=None):
    """The same run in two processes: the first stops (at `pause_at` work, or by QMP stop once `stop_after`
    appears on the console), saves and quits; the second restores and runs to power-off."""
    snap = tmp_path / "split.snap"
    extra = ["--x-pause-at", str(pause_at)] if pause_at else []
    with open(stdin_path, "rb") as stdin:
        m = Machine(rivet_bin, tmp_path / "s.sock", "--icount", *args, *extra, stdin=stdin, time_limit=120)
        mon = m.monitor()
        if pause_at:
            for _ in range(100000):
                if mon.cmd("query-status")["status"] == "paused":
                    break
        else:
            m.wait_for(stop_after)
            mon.cmd("stop")
        assert mon.cmd("query-status")["status"] == "paused"
        save(mon, f"file:{snap}")
        quit_and_close(mon)
        assert m.finish() == 0, m.stderr
    first = m.output
    p = subprocess.run([str(rivet_bin), "run", "--time-limit", "120", "--icount", "--x-ram-hash", *args,
                        "--incoming", f"file:{snap}"], stdin=subprocess.DEVNULL, capture_output=True, timeout=180)
    assert p.returncode == 0, p.stderr.decode()
    return first, p.stdout, ram_hash(p.stderr.decode())


def compare(reference, first, second):
    out, h = reference
    assert first + second[0] == out, (
        f"console differs\n--- uninterrupted (tail) ---\n{out[-1500:].decode(errors='replace')}\n"
        f"--- before snapshot (tail) ---\n{first[-800:].decode(errors='replace')}\n"
        f"--- after restore (tail) ---\n{second[0][-800:].decode(errors='replace')}")
    assert second[1] == h, "RAM at power-off differs from the uninterrupted run"


@pytest.mark.parametrize("harts", [1, 2])
def test_exact_continuation_with_queued_uart_input(rivet_bin, guest_dir, tmp_path, harts):
    # Input is there from the start (one read of under 256 bytes); the snapshot is taken during the
    # kernel's boot, with the bytes still queued in the UART and the console. The restored process gets no
    # stdin at all: what `head` prints after the restore can only come from input carried in the stream.
    stdin = tmp_path / "input"
    stdin.write_bytes(b"".join(b"queued-line-%02d\n" % i for i in range(14)))
    args = ["--smp", str(harts), "--append", "console=ttyS0 rivet.run=head,-n,2"]
    reference = run_to_end(rivet_bin, args, stdin)
    after = reference[0].split(b"run: head -n 2", 1)[1]
    assert b"queued-line-" in after.split(b"run exit status", 1)[0], reference[0][-1500:]
    first, second, h = split_run(rivet_bin, tmp_path, args, stdin, pause_at=30_000_000)
    assert MARKER not in first, "the snapshot was taken before the guest's init ran"
    compare(reference, first, (second, h))


def test_exact_continuation_with_virtio_blk_reads_in_flight(rivet_bin, guest_dir, tmp_path):
    disk = tmp_path / "data.img"
    disk.write_bytes(os.urandom(24 << 20))
    expected = hashlib.md5(disk.read_bytes()).hexdigest().encode()
    args = ["--drive", f"{disk},format=raw,readonly", "--append", "console=ttyS0 rivet.run=md5sum,/dev/vda"]
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    reference = run_to_end(rivet_bin, args, empty)
    assert expected in reference[0]
    first, second, h = split_run(rivet_bin, tmp_path, args, empty, stop_after=b"run: md5sum")
    assert expected not in first, "the snapshot was taken while the disk was being read"
    compare(reference, first, (second, h))
