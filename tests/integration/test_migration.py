"""Live migration over TCP (QMP migrate tcp:, --incoming tcp: / defer + migrate-incoming).

The A-B workload is guest/bench/abwalk.c: it walks a 64 MiB buffer incrementing one byte per page and
checks, page by page, that each still holds the previous pass's value; a page lost or restored stale
by a migration prints "ABWALK FAIL". Every migration below is of a guest running it, and the test
checks that the program keeps passing on the destination and that the source stopped (postmigrate).
Failures: the destination killed mid-way, migrate_cancel, and malformed streams sent to a destination.
"""
import os
import select
import shutil
import socket
import struct
import subprocess
import time

import pytest

from qmp_helpers import Machine, quit_and_close

MARKER = b"RIVET-GUEST: init reached"
PROMPT = b"# "


def drain(m, seconds):
    """Collects whatever the machine prints within `seconds`."""
    end = time.monotonic() + seconds
    fd = m.proc.stdout.fileno()
    while (left := end - time.monotonic()) > 0:
        if select.select([fd], [], [], left)[0]:
            data = os.read(fd, 65536)
            if not data:
                return
            m.output += data


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ask(m, command, answer):
    start = len(m.output)
    m.send(command + b"\n")
    return m.wait_for(answer, start=start + len(command))


def boot_with_walk(rivet_bin, sock, *args):
    m = Machine(rivet_bin, sock, *args)
    m.wait_for(PROMPT, start=m.wait_for(MARKER))
    ask(m, b"/bench/abwalk 64 &", b"ABWALK pass")
    return m


def wait_status(mon, wanted, timeout=90):
    """Polls query-migrate until its status is one of `wanted`; returns the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        info = mon.cmd("query-migrate")
        if info.get("status") in wanted:
            return info
        if time.monotonic() > deadline:
            pytest.fail(f"migration never reached {wanted}: {info}")
        time.sleep(0.05)


def migration_events(mon, until):
    """MIGRATION statuses received, waiting (up to the monitor's timeout) until `until` arrives."""
    statuses = []
    while until not in statuses:
        ev = mon.pull_event(wait=30)
        assert ev is not None, f"no MIGRATION {until} event; got {statuses}"
        if ev["event"] == "MIGRATION":
            statuses.append(ev["data"]["status"])
    return statuses


def walk_keeps_passing(m, passes=2):
    """The A-B program goes on without a FAIL and the shell answers."""
    start = len(m.output)
    m.wait_for(b"ABWALK pass", count=passes, start=start)
    ask(m, b"echo alive-$((6*7))", b"alive-42")
    assert b"ABWALK FAIL" not in m.output, m.output[-2000:].decode("utf-8", "replace")


def migrate(src, dest, uri, **params):
    """Migrates src to dest (already listening); returns (source query-migrate, MIGRATION statuses)."""
    mon = src.monitor()
    if params:
        assert mon.cmd("migrate-set-parameters", **params) == {}
    assert mon.cmd("migrate", uri=uri) == {}
    info = wait_status(mon, ("completed", "failed"))
    assert info["status"] == "completed", info
    statuses = migration_events(mon, until="completed")
    assert mon.cmd("query-status")["status"] == "postmigrate"
    quit_and_close(mon)
    assert src.finish() == 0, src.tail()
    return info, statuses


def check_completed(info, statuses):
    assert statuses[0] == "setup" and statuses[-1] == "completed" and "active" in statuses, statuses
    ram = info["ram"]
    assert ram["total"] == 256 << 20 and ram["remaining"] == 0
    # The first pass covers all of RAM: every page went once as data or as a zero marker.
    assert ram["normal"] + ram["duplicate"] >= 65536
    assert ram["dirty-sync-count"] >= 2
    assert ram["transferred"] >= ram["normal"] * 4096
    for key in ("downtime", "total-time", "setup-time"):
        assert isinstance(info[key], int) and info[key] >= 0, info


@pytest.mark.parametrize("harts", [1, 2])
def test_ab_workload_survives_migration_on_loopback(rivet_bin, guest_dir, tmp_path, harts):
    src = boot_with_walk(rivet_bin, tmp_path / "a.sock", "--smp", harts)
    port = free_port()
    dest = Machine(rivet_bin, tmp_path / "b.sock", "--smp", harts, "--incoming", f"tcp:127.0.0.1:{port}")
    # No bandwidth limit: loopback carries the 64 MiB working set fast enough to converge.
    info, statuses = migrate(src, dest, f"tcp:127.0.0.1:{port}", **{"max-bandwidth": 0})
    check_completed(info, statuses)
    walk_keeps_passing(dest)
    dest.send(b"poweroff -f\n")
    assert dest.finish() == 0, dest.tail()


def make_disk(path, size="32M"):
    subprocess.run(["truncate", "-s", size, str(path)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True, timeout=60)


def assert_image_in_use(disk):
    """A writer from outside (qemu-io) is refused: some rivet process holds the image's write lock. (Were it
    not, the write would only touch the unused first sector of the ext4 image.)"""
    p = subprocess.run(["qemu-io", "-f", "raw", "-c", "write 0 512", str(disk)], capture_output=True, text=True,
                       timeout=30)
    assert p.returncode != 0 and "lock" in (p.stdout + p.stderr), p.stdout + p.stderr


def test_bandwidth_limit_auto_converge_and_a_disk_being_written(rivet_bin, guest_dir, tmp_path):
    """2 harts, 64 MiB/s: the walk dirties 64 MiB per round faster than that, so the rounds do not converge;
    auto-converge throttles the harts (query-migrate says so), then a larger downtime limit lets it finish.
    Meanwhile the guest appends numbered lines to a file on a shared ext4 disk; afterwards the file
    holds every line once, in order."""
    disk = tmp_path / "d.img"
    make_disk(disk)
    drive = f"{disk},format=raw"
    src = boot_with_walk(rivet_bin, tmp_path / "a.sock", "--smp", 2, "--drive", drive)
    ask(src, b"mkdir -p /mnt && mount /dev/vda /mnt && echo mounted-$((1+1))", b"mounted-2")
    src.send(b"(i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo $i >> /mnt/log; done; echo WRITER-DONE-$i) &\n")
    time.sleep(0.5)
    port = free_port()
    # The waiting destination opens the image without its locks (the source holds them) ...
    dest = Machine(rivet_bin, tmp_path / "b.sock", "--smp", 2, "--drive", drive, "--incoming", f"tcp:127.0.0.1:{port}")
    assert_image_in_use(disk)
    mon = src.monitor()
    assert mon.cmd("migrate-set-parameters", **{"max-bandwidth": 64 << 20, "x-rivet-throttle-after-rounds": 2}) == {}
    assert mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port}") == {}
    deadline = time.monotonic() + 60
    while True:
        info = mon.cmd("query-migrate")
        assert info["status"] in ("setup", "active"), info
        if info.get("cpu-throttle-percentage", 0) > 0:
            break
        assert time.monotonic() < deadline, f"auto-converge never engaged: {info}"
        time.sleep(0.1)
    assert info["expected-downtime"] > 300 and info["ram"]["dirty-pages-rate"] > 0, info
    # The QMP socket answers while the migration runs in the background.
    assert mon.cmd("query-status")["status"] == "running"
    assert mon.cmd("migrate-set-parameters", **{"downtime-limit": 20000}) == {}
    info = wait_status(mon, ("completed", "failed"))
    assert info["status"] == "completed", info
    quit_and_close(mon)
    assert src.finish() == 0, src.tail()
    # ... and holds them once it took over.
    assert_image_in_use(disk)
    walk_keeps_passing(dest)
    ask(dest, b"touch /tmp/stop", b"WRITER-DONE-")
    end = dest.wait_for(b"\n", start=dest.output.index(b"WRITER-DONE-"))
    lines = int(dest.output[dest.output.index(b"WRITER-DONE-") + 12:end].strip())
    ask(dest, b"umount /mnt && echo unmounted-$((2+2))", b"unmounted-4")
    dest.send(b"poweroff -f\n")
    assert dest.finish() == 0, dest.tail()
    p = subprocess.run(["debugfs", "-R", "cat /log", str(disk)], capture_output=True, text=True, timeout=60)
    assert p.stdout.split() == [str(i) for i in range(1, lines + 1)], p.stdout[-500:]
    assert lines > 10


NETNS = "rivet-mig"


@pytest.fixture
def two_hosts(rivet_bin, tmp_path):
    """Two network namespaces joined by a veth pair, standing for two hosts: a rivet wrapper for each."""
    assert shutil.which("ip"), "ip (iproute2) is required"
    tag = os.getpid() % 100000
    a, b = f"{NETNS}-a-{tag}", f"{NETNS}-b-{tag}"
    va, vb = f"rvma{tag}", f"rvmb{tag}"
    cmds = [["ip", "netns", "add", a], ["ip", "netns", "add", b],
            ["ip", "link", "add", va, "type", "veth", "peer", "name", vb],
            ["ip", "link", "set", va, "netns", a], ["ip", "link", "set", vb, "netns", b],
            ["ip", "-n", a, "addr", "add", "10.213.0.1/24", "dev", va],
            ["ip", "-n", b, "addr", "add", "10.213.0.2/24", "dev", vb],
            ["ip", "-n", a, "link", "set", va, "up"], ["ip", "-n", b, "link", "set", vb, "up"],
            ["ip", "-n", a, "link", "set", "lo", "up"], ["ip", "-n", b, "link", "set", "lo", "up"]]
    try:
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True, timeout=30)
        wrappers = []
        for name, ns in (("a", a), ("b", b)):
            w = tmp_path / f"rivet-on-{name}"
            w.write_text(f"#!/bin/sh\nexec ip netns exec {ns} {rivet_bin} \"$@\"\n")
            w.chmod(0o755)
            wrappers.append(w)
        yield wrappers
    finally:
        subprocess.run(["ip", "netns", "del", a], capture_output=True)
        subprocess.run(["ip", "netns", "del", b], capture_output=True)


def test_migration_between_two_network_namespaces_with_defer(rivet_bin, guest_dir, tmp_path, two_hosts):
    """Source in one namespace, destination in another (10.213.0.0/24 over a veth pair); the destination
    starts with --incoming defer and is told where to listen by QMP migrate-incoming."""
    host_a, host_b = two_hosts
    src = boot_with_walk(host_a, tmp_path / "a.sock", "--smp", 2)
    dest = Machine(host_b, tmp_path / "b.sock", "--smp", 2, "--incoming", "defer")
    dmon = dest.monitor()
    assert dmon.cmd("query-status")["status"] == "inmigrate"
    assert dmon.cmd("migrate-incoming", uri="tcp:10.213.0.2:4444") == {}
    info, statuses = migrate(src, dest, "tcp:10.213.0.2:4444", **{"max-bandwidth": 0})
    check_completed(info, statuses)
    walk_keeps_passing(dest)
    assert dmon.cmd("query-status")["status"] == "running"
    dmon.close()
    dest.send(b"poweroff -f\n")
    assert dest.finish() == 0, dest.tail()


def test_destination_killed_mid_migration_source_keeps_running(rivet_bin, guest_dir, tmp_path):
    """The destination dies during the rounds: the source reports failed with a reason, its guest keeps
    running untouched, and a second migration to a new destination then completes."""
    src = boot_with_walk(rivet_bin, tmp_path / "a.sock")
    port = free_port()
    dest = Machine(rivet_bin, tmp_path / "b.sock", "--incoming", f"tcp:127.0.0.1:{port}")
    mon = src.monitor()
    assert mon.cmd("migrate-set-parameters", **{"max-bandwidth": 16 << 20}) == {}
    assert mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port}") == {}
    deadline = time.monotonic() + 30
    while mon.cmd("query-migrate")["ram"]["transferred"] < 4 << 20:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    dest.kill()
    info = wait_status(mon, ("failed",), timeout=30)
    assert info["error-desc"] and "\n" not in info["error-desc"]
    assert mon.cmd("query-status")["status"] == "running"
    walk_keeps_passing(src)
    # Nothing was lost: the same source migrates to a new destination.
    port = free_port()
    dest2 = Machine(rivet_bin, tmp_path / "c.sock", "--incoming", f"tcp:127.0.0.1:{port}")
    mon.close()
    info, statuses = migrate(src, dest2, f"tcp:127.0.0.1:{port}", **{"max-bandwidth": 0})
    check_completed(info, statuses)
    walk_keeps_passing(dest2)
    dest2.send(b"poweroff -f\n")
    assert dest2.finish() == 0, dest2.tail()


def test_cancel_returns_the_source_to_running_and_the_destination_exits(rivet_bin, guest_dir, tmp_path):
    src = boot_with_walk(rivet_bin, tmp_path / "a.sock")
    port = free_port()
    dest = Machine(rivet_bin, tmp_path / "b.sock", "--incoming", f"tcp:127.0.0.1:{port}")
    mon = src.monitor()
    assert mon.cmd("migrate-set-parameters", **{"max-bandwidth": 8 << 20}) == {}
    assert mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port}") == {}
    wait_status(mon, ("active",))
    assert mon.cmd("migrate_cancel") == {}
    info = wait_status(mon, ("cancelled",), timeout=30)
    statuses = migration_events(mon, until="cancelled")
    assert statuses[-2:] == ["cancelling", "cancelled"], statuses
    assert mon.cmd("query-status")["status"] == "running"
    walk_keeps_passing(src)
    assert dest.finish() == 1
    err = dest.stderr.decode()
    assert "--incoming tcp:" in err and "truncated" in err, err
    assert b"ABWALK" not in dest.output, "the destination never ran the guest"
    quit_and_close(mon)
    assert src.finish() == 0, src.tail()


def send_to_destination(rivet_bin, tmp_path, payload):
    port = free_port()
    dest = Machine(rivet_bin, tmp_path / f"d{port}.sock", "--incoming", f"tcp:127.0.0.1:{port}", time_limit=30)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(payload)
    s.close()
    code = dest.finish()
    return code, dest.stderr.decode(), dest.output


def test_malformed_streams_end_the_destination_with_one_line(rivet_bin, tmp_path):
    header = b"RIVETVM\0" + struct.pack("<I", 1)
    cases = [
        (b"garbage that is not a stream", "bad magic"),
        (header, "truncated"),
        (header + b"S" + struct.pack("<H", 7) + b"machine" + struct.pack("<IQ", 1, 3) + b"abc" + b"\0\0\0\0", "machine"),
        (header + b"X", "corrupt"),
    ]
    for payload, word in cases:
        code, err, out = send_to_destination(rivet_bin, tmp_path, payload)
        assert code == 1, (payload, err)
        lines = [l for l in err.splitlines() if not l.startswith("rivet: waiting for")]
        assert len(lines) == 1 and word in lines[0] and lines[0].startswith("rivet: --incoming tcp:"), err
        assert out == b"", "the guest never ran"


def test_paused_source_stays_paused_and_the_destination_answers_qmp_while_receiving(rivet_bin, guest_dir, tmp_path):
    """A source paused (QMP stop) when it migrates: the destination takes its run state and stays paused
    until cont. The destination, started with --incoming defer, answers QMP all through the receive:
    query-status says inmigrate, query-migrate says setup while it listens and active, with the bytes read
    so far, while the stream arrives. The drive goes along with the `block` capability (QEMU's)."""
    src_disk, dst_disk = tmp_path / "s.raw", tmp_path / "d.raw"
    subprocess.run(["truncate", "-s", "8M", str(src_disk), str(dst_disk)], check=True)
    src = Machine(rivet_bin, tmp_path / "a.sock", "--drive", f"{src_disk},format=raw")
    src.wait_for(PROMPT, start=src.wait_for(MARKER))
    ask(src, b"echo disk-data | dd of=/dev/vda bs=512 seek=77 conv=fsync 2>/dev/null; echo written-$((1+2))", b"written-3")
    mon = src.monitor()
    assert mon.cmd("stop") == {}
    dest = Machine(rivet_bin, tmp_path / "b.sock", "--drive", f"{dst_disk},format=raw", "--incoming", "defer")
    dmon = dest.monitor()
    assert dmon.cmd("query-migrate") == {}
    assert dmon.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{(port := free_port())}") == {}
    assert dmon.cmd("query-migrate")["status"] == "setup"
    assert mon.cmd("migrate-set-capabilities", capabilities=[{"capability": "block", "state": True}]) == {}
    assert {"capability": "block", "state": True} in mon.cmd("query-migrate-capabilities")
    # Slow, so the destination is caught receiving.
    assert mon.cmd("migrate-set-parameters", **{"max-bandwidth": 8 << 20}) == {}
    assert mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port}") == {}
    deadline = time.monotonic() + 30
    while True:
        info = dmon.cmd("query-migrate")
        if info["status"] == "active" and info["ram"]["transferred"] > 1 << 20:
            break
        assert info["status"] in ("setup", "active") and time.monotonic() < deadline, info
        time.sleep(0.05)
    assert dmon.cmd("query-status") == {"status": "inmigrate", "singlestep": False, "running": False}
    assert mon.cmd("migrate-set-parameters", **{"max-bandwidth": 0}) == {}
    info = wait_status(mon, ("completed", "failed"))
    assert info["status"] == "completed", info
    assert info["disk"]["total"] == 8 << 20 and info["disk"]["remaining"] == 0
    quit_and_close(mon)
    assert src.finish() == 0, src.tail()
    assert wait_status(dmon, ("completed",))["status"] == "completed"
    assert dmon.cmd("query-status")["status"] == "paused"
    # Typed input waits while the guest is paused, and is answered once it continues.
    dest.send(b"echo resumed-$((4+4))\n")
    drain(dest, 1.0)
    assert b"resumed-8" not in dest.output, "the paused destination ran the guest"
    assert dmon.cmd("query-status")["status"] == "paused"
    assert dmon.cmd("cont") == {}
    dest.wait_for(b"resumed-8")
    ask(dest, b"dd if=/dev/vda bs=512 skip=77 count=1 2>/dev/null | head -c 9; echo", b"disk-data")
    dmon.close()
    dest.send(b"poweroff -f\n")
    assert dest.finish() == 0, dest.tail()


def test_source_started_with_S_arrives_paused_and_boots_on_cont(rivet_bin, guest_dir, tmp_path):
    """A source that never ran (-S, prelaunch) migrates as it is; the destination stays paused until cont,
    then boots the guest from the start."""
    src = Machine(rivet_bin, tmp_path / "a.sock", "-S")
    port = free_port()
    dest = Machine(rivet_bin, tmp_path / "b.sock", "--incoming", f"tcp:127.0.0.1:{port}")
    mon = src.monitor()
    assert mon.cmd("query-status")["status"] == "prelaunch"
    assert mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port}") == {}
    assert wait_status(mon, ("completed", "failed"))["status"] == "completed"
    quit_and_close(mon)
    assert src.finish() == 0, src.tail()
    assert src.output == b""
    dmon = dest.monitor()
    assert wait_status(dmon, ("completed",))["status"] == "completed"
    assert dmon.cmd("query-status")["status"] == "paused"
    drain(dest, 0.5)
    assert dest.output == b"", "the destination ran before cont"
    assert dmon.cmd("cont") == {}
    dest.wait_for(PROMPT, start=dest.wait_for(MARKER))
    ask(dest, b"echo booted-$((5+5))", b"booted-10")
    dmon.close()
    dest.send(b"poweroff -f\n")
    assert dest.finish() == 0, dest.tail()
