"""Failover (docs/failover.md): a primary (`--replicate tcp:`) streams checkpoints to a standby
(`--incoming tcp: --standby`), which takes over when the primary is lost.

The workload is guest/bench/seqdisk.c: it writes record n to its disk, fsyncs, and only then prints
`ACK n`. Output commit means the outside sees `ACK n` only once the checkpoint holding that write is on
the standby, so after the primary is killed (kill -9, at random moments) every n the primary's console
showed must be on the standby's disk, and the standby's guest must go on counting from there.

To keep 20+ trials fast the guest is booted once and saved with QMP migrate file: while seqdisk waits
for a line on its console; every trial restores that snapshot on the primary (`--incoming file:`).
"""
import os
import random
import re
import select
import socket
import struct
import subprocess
import threading
import time

import pytest

from qmp_helpers import Machine, quit_and_close, wait_event

MEMORY = "128M"
DISK_SIZE = 16 << 20
RECORD_MAGIC = 0x44514553
TRIALS = int(os.environ.get("RIVET_FAILOVER_TRIALS", "20"))   # bench/failover.sh --soak runs more


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_disk(path):
    with open(path, "wb") as f:
        f.truncate(DISK_SIZE)
    return path


def records_on_disk(path):
    """The n of every valid seqdisk record on the image."""
    data = open(path, "rb").read()
    found = set()
    for n in range(1, len(data) // 512):
        magic, _, value, _ = struct.unpack_from("<IIQQ", data, n * 512)
        if magic == RECORD_MAGIC and value == n:
            found.add(n)
    return found


def acks(output):
    return [int(x) for x in re.findall(rb"ACK (\d+)\r?\n", output)]


@pytest.fixture(scope="module")
def snapshot(rivet_bin, guest_dir, tmp_path_factory):
    """The default guest booted with seqdisk waiting for its go line, saved to a file."""
    d = tmp_path_factory.mktemp("failover-snap")
    disk = make_disk(d / "boot.img")
    m = Machine(rivet_bin, d / "boot.sock", "--memory", MEMORY, "--drive", f"{disk},format=raw",
                "--append", "console=ttyS0 rivet.run=/bench/seqdisk,/dev/vda,wait")
    m.wait_for(b"SEQDISK ready")
    mon = monitor(m)
    mon.cmd("stop")
    mon.cmd("migrate", uri=f"file:{d / 'seqdisk.snap'}")
    quit_and_close(mon)
    m.finish()
    return d / "seqdisk.snap"


def start_standby(rivet_bin, tmp_path, name, port, *extra):
    disk = make_disk(tmp_path / f"{name}.img")
    m = Machine(rivet_bin, tmp_path / f"{name}.sock", "--memory", MEMORY, "--drive", f"{disk},format=raw",
                "--incoming", f"tcp:127.0.0.1:{port}", "--standby", *extra)
    return m, disk


def start_primary(rivet_bin, tmp_path, snapshot, port, options=""):
    disk = make_disk(tmp_path / "primary.img")
    m = Machine(rivet_bin, tmp_path / "primary.sock", "--memory", MEMORY, "--drive", f"{disk},format=raw",
                "--incoming", f"file:{snapshot}", "--replicate", f"tcp:127.0.0.1:{port}{options}")
    return m, disk


def monitor(m):
    """A QMP monitor; the socket file appears a moment before rivet listens on it, so retry briefly."""
    for attempt in range(50):
        try:
            return m.monitor()
        except Exception:   # qemu.qmp wraps the refusal in its ConnectError
            time.sleep(0.05)
    return m.monitor()


def wait_replication(mon, wanted, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        info = mon.cmd("query-replication")
        if info["status"] in wanted:
            return info
        if time.monotonic() > deadline:
            pytest.fail(f"replication never reached {wanted}: {info}")
        time.sleep(0.02)


def drain(m):
    """Everything the (killed) process wrote to its console."""
    fd = m.proc.stdout.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 5)
        if not ready:
            break
        data = os.read(fd, 65536)
        if not data:
            break
        m.output += data
    return m.output


def kill9(m):
    m.proc.kill()
    m.proc.wait()


def check_takeover(standby, standby_disk, seen):
    """After the primary died: the standby took over (one line on stderr), every n the primary's released
    output showed is on its disk, and its guest counts on from where the committed state was."""
    top = max(seen, default=0)
    # The standby prints the next ACK the guest makes; it comes after every one the outside saw.
    standby.wait_for(b"ACK ", count=3)
    new = acks(standby.output)
    assert new, standby.output[-500:]
    assert new[0] > top, f"the standby printed ACK {new[0]} again although the primary had shown {top}"
    assert new == list(range(new[0], new[0] + len(new))), f"the standby's guest skipped: {new[:10]}"
    on_disk = records_on_disk(standby_disk)
    lost = [n for n in seen if n not in on_disk]
    assert not lost, f"ACKed on the primary but not on the standby's disk: {lost[:10]} (top {top})"
    # Every record before the standby's first new one is there: the committed state and the disk agree.
    assert set(range(1, new[0])) <= on_disk
    mon = monitor(standby)
    assert mon.cmd("query-status")["status"] == "running"
    info = mon.cmd("query-replication")
    assert info["status"] == "took-over" and info["role"] == "standby"
    mon.close()
    standby.kill()
    assert re.search(rb"rivet: standby took over at \d{4}-\d\d-\d\dT[\d:.]+Z from checkpoint \d+",
                     standby.proc.stderr.read())


def test_primary_killed_at_random_moments(rivet_bin, guest_dir, tmp_path, snapshot):
    rng = random.Random(1234 + int(time.time()) % 1000)
    for trial in range(TRIALS):
        d = tmp_path / f"t{trial}"
        d.mkdir()
        port = free_port()
        standby, standby_disk = start_standby(rivet_bin, d, "standby", port)
        primary, _ = start_primary(rivet_bin, d, snapshot, port)
        mon = monitor(primary)
        wait_replication(mon, {"replicating"})
        mon.close()
        primary.send(b"go\n")
        primary.wait_for(b"ACK ")
        time.sleep(rng.uniform(0, 0.8))
        kill9(primary)
        seen = acks(drain(primary))
        assert seen == list(range(1, len(seen) + 1)), f"trial {trial}: the primary's output skipped: {seen[:10]}"
        check_takeover(standby, standby_disk, seen)


def test_standby_killed_primary_continues_then_a_new_standby(rivet_bin, guest_dir, tmp_path, snapshot):
    port = free_port()
    standby, _ = start_standby(rivet_bin, tmp_path, "standby", port)
    primary, _ = start_primary(rivet_bin, tmp_path, snapshot, port)
    mon = monitor(primary)
    wait_replication(mon, {"replicating"})
    smon = monitor(standby)
    assert wait_replication(smon, {"standby"})["role"] == "standby"
    assert smon.cmd("query-status")["status"] == "inmigrate"
    assert "error" in smon.cmd_raw("cont"), "a standby must not run its guest before taking over"
    smon.close()
    primary.send(b"go\n")
    primary.wait_for(b"ACK 20\r\n")
    kill9(standby)
    ev = wait_event(mon, "COLO_EXIT")
    assert ev["data"] == {"mode": "primary", "reason": "error"}
    info = mon.cmd("query-replication")
    assert info["status"] == "standby-lost" and "error-desc" in info
    assert mon.cmd("query-status")["status"] == "running"
    # Unreplicated, the guest goes on and its output flows.
    count = len(acks(primary.output))
    primary.wait_for(b"ACK ", count=count + 20)
    # A new standby: it gets the drive as it is now (its own image starts empty) and then checkpoints.
    port2 = free_port()
    standby2, disk2 = start_standby(rivet_bin, tmp_path, "standby2", port2)
    mon.cmd("migrate-set-capabilities", capabilities=[{"capability": "x-colo", "state": True}])
    mon.cmd("migrate-set-parameters", **{"x-checkpoint-delay": 30})
    mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port2}")
    info = wait_replication(mon, {"replicating"})
    assert info["period-ms"] == 30
    count = len(acks(primary.output))
    primary.wait_for(b"ACK ", count=count + 10)
    mon.close()
    kill9(primary)
    check_takeover(standby2, disk2, acks(drain(primary)))


class Proxy:
    """Forwards one TCP connection; `cut()` stops forwarding without closing (a silent network)."""

    def __init__(self, target_port):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.target = target_port
        self.forwarding = True
        self.sockets = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        a, _ = self.listener.accept()
        b = socket.create_connection(("127.0.0.1", self.target))
        self.sockets = [a, b]
        for src, dst in ((a, b), (b, a)):
            threading.Thread(target=self.pump, args=(src, dst), daemon=True).start()

    def pump(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while not self.forwarding:
                    time.sleep(0.05)   # hold everything: nothing crosses any more
                dst.sendall(data)
        except OSError:
            pass

    def cut(self):
        self.forwarding = False

    def close(self):
        for s in self.sockets + [self.listener]:
            s.close()


def test_network_cut_both_sides_run_as_documented(rivet_bin, guest_dir, tmp_path, snapshot):
    """A silent network: the standby takes over after its heartbeat timeout, the primary stops
    replicating after its acknowledgement timeout and continues; both then run (the split brain
    docs/failover.md describes; fencing is the operator's)."""
    port = free_port()
    standby, standby_disk = start_standby(rivet_bin, tmp_path, "standby", port, "--heartbeat-ms", "300")
    proxy = Proxy(port)
    primary, _ = start_primary(rivet_bin, tmp_path, snapshot, proxy.port, ",ack-timeout-ms=1000")
    mon = monitor(primary)
    wait_replication(mon, {"replicating"})
    primary.send(b"go\n")
    primary.wait_for(b"ACK 30\r\n")
    proxy.cut()
    wait_event(mon, "COLO_EXIT")
    info = mon.cmd("query-replication")
    assert info["status"] == "standby-lost" and "acknowledge" in info["error-desc"]
    count = len(acks(primary.output))
    primary.wait_for(b"ACK ", count=count + 10)   # the primary's guest goes on, unreplicated
    smon = monitor(standby)
    info = wait_replication(smon, {"took-over"})
    assert "silent" in info["error-desc"]
    assert smon.cmd("query-status")["status"] == "running"
    smon.close()
    standby.wait_for(b"ACK ")
    # What the primary showed before the cut was committed, so it is on the standby's disk.
    shown = [n for n in acks(primary.output) if n <= 30]
    assert set(shown) <= records_on_disk(standby_disk)
    quit_and_close(mon)
    primary.finish()
    standby.kill()
    proxy.close()


def test_primary_poweroff_ends_replication_without_takeover(rivet_bin, guest_dir, tmp_path):
    """A primary whose guest powers off sends a last checkpoint and an end message: the standby exits
    0 instead of resuming a guest that already ended."""
    port = free_port()
    standby, _ = start_standby(rivet_bin, tmp_path, "standby", port)
    disk = make_disk(tmp_path / "p.img")
    primary = subprocess.run(
        [str(rivet_bin), "run", "--time-limit", "90", "--memory", MEMORY, "--drive", f"{disk},format=raw",
         "--append", "console=ttyS0 rivet.run=/bench/seqdisk,/dev/vda,x,50", "--replicate", f"tcp:127.0.0.1:{port}"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert primary.returncode == 0, primary.stderr
    assert b"ACK 50\r\n" in primary.stdout and b"RIVET-GUEST: powering off" in primary.stdout
    assert standby.finish() == 0, standby.tail()
    assert b"the primary ended replication" in standby.stderr
    assert b"took over" not in standby.stderr
    assert b"ACK" not in standby.output


@pytest.mark.parametrize("payload", [b"not a stream at all", b"RIVETVM\x00\x01\x00\x00\x00S\x07\x00machine", b""])
def test_malformed_stream_ends_a_standby_with_one_line(rivet_bin, tmp_path, payload):
    """Before its first checkpoint a standby has nothing to take over: a bad or broken stream ends it
    with status 1 and one line, and its guest never runs."""
    port = free_port()
    disk = make_disk(tmp_path / "s.img")
    standby = subprocess.Popen([str(rivet_bin), "run", "--memory", MEMORY, "--drive", f"{disk},format=raw",
                                "--incoming", f"tcp:127.0.0.1:{port}", "--standby"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            c = socket.create_connection(("127.0.0.1", port))
            break
        except OSError:
            assert time.monotonic() < deadline, "the standby never listened"
            time.sleep(0.05)
    c.sendall(payload)
    c.close()
    out, err = standby.communicate(timeout=30)
    assert standby.returncode == 1
    lines = [l for l in err.decode().splitlines() if not l.startswith("rivet: waiting for")]
    assert len(lines) == 1 and lines[0].startswith("rivet: --standby tcp:127.0.0.1:") and "first checkpoint" in lines[0], err
    assert out == b""


def test_network_output_is_committed_too(rivet_bin, guest_dir, tmp_path):
    """The same promise for frames: the guest sends `ACK n` as UDP datagrams to a host socket (through
    user-mode networking) after each fsynced write; after the primary is killed the host has received no
    n twice (the standby never repeats what the outside saw), every n is on the standby's disk, and the
    standby's guest goes on sending."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.2)
    udp_port = receiver.getsockname()[1]
    received = []
    stop = threading.Event()

    def collect():
        while not stop.is_set():
            try:
                received.append(receiver.recv(65536))
            except socket.timeout:
                pass
    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    port = free_port()
    standby, standby_disk = start_standby(rivet_bin, tmp_path, "standby", port, "--nic", "user")
    disk = make_disk(tmp_path / "primary.img")
    primary = Machine(rivet_bin, tmp_path / "primary.sock", "--memory", MEMORY, "--drive", f"{disk},format=raw",
                      "--nic", "user", "--replicate", f"tcp:127.0.0.1:{port}", "--append",
                      f"console=ttyS0 rivet.run=/bench/seqdisk,/dev/vda|nc,-u,10.0.2.2,{udp_port}")
    deadline = time.monotonic() + 60
    while len(acks(b"".join(received))) < 50:
        assert time.monotonic() < deadline, f"the host received {len(received)} datagrams"
        time.sleep(0.05)
    kill9(primary)
    killed_at = len(received)
    before = acks(b"".join(received))
    deadline = time.monotonic() + 30
    while max(acks(b"".join(received))) <= max(before):
        assert time.monotonic() < deadline, "the standby's guest sent nothing new"
        time.sleep(0.05)
    stop.set()
    collector.join()
    standby.kill()
    on_disk = records_on_disk(standby_disk)
    sent = acks(b"".join(received))
    # A datagram from an epoch the standby never got would be sent again by its guest after the takeover.
    repeats = [b for a, b in zip(sent, sent[1:]) if b <= a]
    assert not repeats, (f"the host received ACK {repeats[0]} twice: a frame left before its checkpoint was committed; "
                         f"around the kill: {acks(b''.join(received[max(killed_at - 3, 0):killed_at + 40]))}")
    assert not [n for n in sent if n not in on_disk], "a datagram left for a write the standby does not have"
    receiver.close()


EXT4_COUNT = 500


@pytest.fixture(scope="module")
def ext4_snapshot(rivet_bin, guest_dir, tmp_path_factory):
    """The guest with an ext4 file system on its disk mounted at /mnt and seqdisk waiting to write
    /mnt/seq; it stops after EXT4_COUNT records, unmounts and powers off. Returns (snapshot, disk)."""
    d = tmp_path_factory.mktemp("failover-ext4")
    disk = make_disk(d / "boot.img")
    subprocess.run(["mkfs.ext4", "-q", "-F", str(disk)], check=True)
    m = Machine(rivet_bin, d / "boot.sock", "--memory", MEMORY, "--drive", f"{disk},format=raw", "--append",
                f"console=ttyS0 rivet.run=mount,/dev/vda,/mnt&&/bench/seqdisk,/mnt/seq,wait,{EXT4_COUNT}&&umount,/mnt")
    m.wait_for(b"SEQDISK ready")
    mon = monitor(m)
    mon.cmd("stop")
    mon.cmd("migrate", uri=f"file:{d / 'ext4.snap'}")
    quit_and_close(mon)
    m.finish()
    return d / "ext4.snap", disk


def seq_file_records(image):
    """The n of every valid record in /seq of an ext4 image (read with debugfs, the image untouched)."""
    data = subprocess.run(["debugfs", "-R", "cat /seq", str(image)], capture_output=True, check=True).stdout
    found = set()
    for n in range(1, len(data) // 512):
        magic, _, value, _ = struct.unpack_from("<IIQQ", data, n * 512)
        if magic == RECORD_MAGIC and value == n:
            found.add(n)
    return found


def test_ext4_file_on_the_standby_checks_clean(rivet_bin, guest_dir, tmp_path, ext4_snapshot):
    """seqdisk on a file in ext4: after the primary is killed the standby's guest finishes its count,
    unmounts and powers off; the standby's image then passes e2fsck -fn and /seq holds every ACK shown."""
    snap, boot_disk = ext4_snapshot
    rng = random.Random(99 + int(time.time()) % 1000)
    for trial in range(3):
        d = tmp_path / f"t{trial}"
        d.mkdir()
        port = free_port()
        standby, standby_disk = start_standby(rivet_bin, d, "standby", port)
        primary_disk = d / "primary.img"
        primary_disk.write_bytes(boot_disk.read_bytes())   # the disk as it was when the snapshot was taken
        primary = Machine(rivet_bin, d / "primary.sock", "--memory", MEMORY, "--drive", f"{primary_disk},format=raw",
                          "--incoming", f"file:{snap}", "--replicate", f"tcp:127.0.0.1:{port}")
        mon = monitor(primary)
        wait_replication(mon, {"replicating"})
        mon.close()
        primary.send(b"go\n")
        primary.wait_for(b"ACK ")
        time.sleep(rng.uniform(0, 0.4))
        kill9(primary)
        seen = acks(drain(primary))
        assert len(seen) < EXT4_COUNT, "the primary finished before it was killed; lower the sleep"
        standby.wait_for(b"RIVET-GUEST: powering off")
        assert standby.finish() == 0, standby.tail()
        new = acks(standby.output)
        assert new and new[0] > max(seen, default=0) and new[-1] == EXT4_COUNT, (seen[-3:], new[:3], new[-3:])
        fsck = subprocess.run(["e2fsck", "-fn", str(standby_disk)], capture_output=True, text=True)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        assert set(range(1, EXT4_COUNT + 1)) <= seq_file_records(standby_disk)
