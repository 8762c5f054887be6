"""The QMP management socket of `rivet run`, driven by the real qemu.qmp client and by raw JSON: queries,
stop/cont with a frozen guest, events with timestamps, reset, powerdown, quit, several clients in turn,
a client that vanishes mid-command, and malformed input - none of which may disturb the guest."""
import json
import os
import re
import socket
import subprocess
import time

import pytest

from qmp_helpers import Machine, RawClient, quit_and_close, wait_event

MARKER = b"RIVET-GUEST: init reached"
PROMPT = b"# "

REQUIRED_COMMANDS = {"qmp_capabilities", "query-version", "query-commands", "query-status", "query-name",
                     "query-cpus-fast", "query-block", "stop", "cont", "system_reset", "system_powerdown", "quit",
                     "migrate", "query-migrate", "migrate_cancel"}


def shell(rivet_bin, tmp_path, *args):
    m = Machine(rivet_bin, tmp_path / "qmp.sock", *args)
    m.wait_for(PROMPT, start=m.wait_for(MARKER))
    return m


def ask(m, command, answer):
    """Types a shell command and waits for its answer (the echo of the command itself does not count)."""
    start = len(m.output)
    m.send(command + b"\n")
    return m.wait_for(answer, start=start + len(command))


def test_queries_over_the_qemu_qmp_client(rivet_bin, guest_dir, tmp_path):
    disk = tmp_path / "d.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "32M"], check=True)
    m = shell(rivet_bin, tmp_path, "--smp", "2", "--drive", f"{disk},format=qcow2")
    mon = m.monitor()
    greeting = mon._get_greeting()
    assert "version" in greeting["QMP"] and "capabilities" in greeting["QMP"]
    assert mon.cmd("query-version")["qemu"].keys() >= {"major", "minor", "micro"}
    names = {c["name"] for c in mon.cmd("query-commands")}
    assert REQUIRED_COMMANDS <= names
    assert mon.cmd("query-status") == {"status": "running", "singlestep": False, "running": True}
    assert mon.cmd("query-name") == {}
    cpus = mon.cmd("query-cpus-fast")
    assert [c["cpu-index"] for c in cpus] == [0, 1] and all(c["target"] == "riscv64" for c in cpus)
    block = mon.cmd("query-block")
    assert len(block) == 1
    assert block[0]["inserted"]["drv"] == "qcow2"
    assert block[0]["inserted"]["image"]["virtual-size"] == 32 << 20
    assert block[0]["inserted"]["file"] == str(disk)
    assert mon.cmd("query-migrate") == {}
    mon.close()
    ask(m, b"echo still-$((40+2))", b"still-42")
    m.send(b"poweroff -f\n")
    assert m.finish() == 0, m.tail()


def test_stop_freezes_the_guest_and_cont_resumes_it(rivet_bin, guest_dir, tmp_path):
    m = shell(rivet_bin, tmp_path)
    mon = m.monitor()
    mon.cmd("stop")
    stop = wait_event(mon, "STOP")
    assert set(stop["timestamp"]) == {"seconds", "microseconds"}
    assert abs(stop["timestamp"]["seconds"] - time.time()) < 600
    assert mon.cmd("query-status")["status"] == "paused"
    # A paused machine executes nothing: the harts' work count does not move, even with console input.
    before = mon.cmd("x-rivet-ram-hash")
    m.send(b"echo after-$((6*7))\n")
    again = mon.cmd("x-rivet-ram-hash")
    assert again == before
    assert b"after-42" not in m.output
    mon.cmd("cont")
    wait_event(mon, "RESUME")
    assert mon.cmd("query-status")["status"] == "running"
    m.wait_for(b"after-42")
    mon.close()
    m.send(b"poweroff -f\n")
    assert m.finish() == 0, m.tail()


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def uptime(m):
    start = len(m.output)
    m.send(b"echo UP-$(cut -d' ' -f1 /proc/uptime)-$((1+1))END\n")
    end = m.wait_for(b"-2END", start=start)
    return float(re.findall(rb"UP-([0-9.]+)-2END", m.output[start:end])[-1])


def test_guest_time_does_not_jump_over_a_pause(rivet_bin, guest_dir, tmp_path):
    m = shell(rivet_bin, tmp_path)
    mon = m.monitor()
    first = uptime(m)
    mon.cmd("stop")
    cpu_before = cpu_seconds(m.proc.pid)
    paused_at = time.monotonic()
    while time.monotonic() - paused_at < 3:
        time.sleep(0.1)
    cpu_paused = cpu_seconds(m.proc.pid) - cpu_before
    mon.cmd("cont")
    second = uptime(m)
    # Three host seconds passed while paused; the guest's clock must not count them.
    assert second - first < 2.5, (first, second)
    # A paused machine sleeps: a small fraction of the three seconds in CPU time.
    assert cpu_paused < 0.3, cpu_paused
    mon.close()
    m.send(b"poweroff -f\n")
    assert m.finish() == 0, m.tail()


def test_system_reset_reboots_and_quit_ends_with_shutdown(rivet_bin, guest_dir, tmp_path):
    m = shell(rivet_bin, tmp_path)
    mon = m.monitor()
    mon.cmd("system_reset")
    ev = wait_event(mon, "RESET")
    assert ev["data"] == {"guest": False, "reason": "host-qmp-system-reset"}
    m.wait_for(MARKER, count=2)
    mon.cmd("system_powerdown")
    wait_event(mon, "POWERDOWN")
    mon.cmd("quit")
    ev = wait_event(mon, "SHUTDOWN")
    assert ev["data"] == {"guest": False, "reason": "host-qmp-quit"}
    try:
        mon.close()
    except EOFError:
        pass
    assert m.finish() == 0, m.tail()


def test_guest_poweroff_is_a_shutdown_event(rivet_bin, guest_dir, tmp_path):
    m = shell(rivet_bin, tmp_path)
    mon = m.monitor()
    m.send(b"poweroff -f\n")
    ev = wait_event(mon, "SHUTDOWN")
    assert ev["data"] == {"guest": True, "reason": "guest-shutdown"}
    assert m.finish() == 0, m.tail()


def test_raw_json_errors_and_clients_in_turn_never_disturb_the_guest(rivet_bin, guest_dir, tmp_path):
    m = shell(rivet_bin, tmp_path)
    sock = tmp_path / "qmp.sock"
    c = RawClient(sock, negotiate=False)
    assert "QMP" in c.greeting
    c.send(b'{"execute": "query-status", "id": 1}\n')
    r = c.recv()
    assert r["error"]["class"] == "CommandNotFound" and r["id"] == 1
    c.send(b'{"execute": "qmp_capabilities", "id": "neg"}\n')
    assert c.recv() == {"return": {}, "id": "neg"}
    for bad in [b'{"execute": }\n', b'this is not json\n', b'{"execute": "query-status" "x": 1}\n']:
        c.send(bad)
        assert c.recv()["error"]["class"] == "GenericError"
    c.send(b'[1, 2]\n')
    assert c.recv()["error"]["desc"] == "QMP input must be a JSON object"
    c.send(b'{"arguments": {}}\n')
    assert "lacks member 'execute'" in c.recv()["error"]["desc"]
    c.send(b'{"execute": "no-such-command", "id": [7]}\n')
    r = c.recv()
    assert r["error"]["class"] == "CommandNotFound" and r["id"] == [7]
    c.send(b'{"execute": "query-status", "arguments": 5}\n')
    assert c.recv()["error"]["class"] == "GenericError"
    # One message split across writes, and two in one write.
    c.send(b'{"execute": "query-')
    c.send(b'status", "id": 2}{"execute": "query-name", "id": 3}')
    assert c.recv()["id"] == 2 and c.recv() == {"return": {}, "id": 3}
    # Deep nesting is refused, not a crash.
    c.send(b'{"execute": "query-name", "arguments": ' + b'{"a": ' * 200 + b'1' + b'}' * 200 + b'}\n')
    assert "error" in c.recv()
    c.close()
    # A client that sends stop and vanishes before the answer: the command still runs, the next client
    # is served, and the guest goes on once continued.
    gone = RawClient(sock)
    gone.send(b'{"execute": "stop"}\n')
    gone.close()
    nxt = RawClient(sock)
    for _ in range(100):
        if nxt.cmd("query-status")["return"]["status"] == "paused":
            break
    assert nxt.cmd("query-status")["return"]["status"] == "paused"
    assert nxt.cmd("cont") == {"return": {}}
    nxt.close()
    ask(m, b"echo alive-$((6*7))", b"alive-42")
    m.send(b"poweroff -f\n")
    assert m.finish() == 0, m.tail()


def test_qmp_over_tcp(rivet_bin, guest_dir, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    p = subprocess.Popen([str(rivet_bin), "run", "--time-limit", "60", "-S", "--qmp", f"tcp:127.0.0.1:{port},server=on,wait=off"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        from qemu.qmp import ConnectError
        from qemu.qmp.legacy import QEMUMonitorProtocol
        mon = None
        for _ in range(200):
            try:
                mon = QEMUMonitorProtocol(("127.0.0.1", port))
                mon.connect(negotiate=True)
                break
            except (OSError, ConnectError):
                mon = None
                time.sleep(0.05)
        assert mon is not None, "no QMP on tcp"
        assert mon.cmd("query-status")["status"] == "prelaunch"
        quit_and_close(mon)
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out == b"", "-S: nothing ran before quit"
    finally:
        if p.poll() is None:
            p.kill()


@pytest.mark.parametrize("args, words", [
    (["--qmp", "foo:bar"], "unix:PATH or tcp:HOST:PORT"),
    (["--qmp", "unix:/tmp/x.sock,server=off"], "server=on"),
    (["--qmp", "tcp:127.0.0.1:notaport,server=on,wait=off"], "tcp:HOST:PORT"),
    (["--incoming", "tcp:127.0.0.1"], "expected tcp:HOST:PORT"),
    (["--incoming", "tcp:example.org:4444"], "IPv4 address"),
    (["--incoming", "file:/nonexistent/vm.snap"], "cannot open"),
    (["--incoming", "ftp://x"], "unsupported migration URI"),
])
def test_bad_management_options_are_one_line_errors(rivet_bin, guest_dir, args, words):
    p = subprocess.run([str(rivet_bin), "run", "--time-limit", "10", *args], stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert p.stdout == b""
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr


def test_quit_is_answered_before_its_shutdown_event(rivet_bin, guest_dir, tmp_path):
    m = Machine(rivet_bin, tmp_path / "q.sock", "-S")
    c = RawClient(tmp_path / "q.sock")
    c.send(b'{"execute": "quit", "id": "bye"}\n')
    assert c.recv(skip_events=False) == {"return": {}, "id": "bye"}
    ev = c.recv(skip_events=False)
    assert ev["event"] == "SHUTDOWN" and ev["data"] == {"guest": False, "reason": "host-qmp-quit"}
    with pytest.raises(EOFError):
        c.recv(skip_events=False)
    assert m.finish() == 0, m.tail()
    assert m.output == b""
