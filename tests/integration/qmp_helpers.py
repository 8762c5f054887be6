"""Helpers for tests that drive `rivet run` over QMP: a rivet process with a QMP socket and its console on
pipes, and a synchronous monitor built on the real qemu.qmp client (QMPClient under its legacy wrapper)."""
import json
import os
import select
import socket
import subprocess
import time

import pytest
from qemu.qmp.legacy import QEMUMonitorProtocol


class Machine:
    """`rivet run ARGS --qmp unix:SOCK,server=on,wait=off` with stdin/stdout on pipes (or stdin from a file)."""

    def __init__(self, rivet_bin, sock, *args, time_limit=90, stdin=subprocess.PIPE):
        self.sock = str(sock)
        self.argv = [str(rivet_bin), "run", "--time-limit", str(time_limit), *map(str, args),
                     "--qmp", f"unix:{self.sock},server=on,wait=off"]
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.deadline = time.monotonic() + time_limit + 30
        self.output = b""
        self.stderr = b""
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None:
                pytest.fail(f"rivet exited {self.proc.returncode} before its QMP socket appeared: "
                            f"{self.proc.stderr.read().decode()}")
            if time.monotonic() > self.deadline:
                self.kill()
                pytest.fail("QMP socket never appeared")
            time.sleep(0.02)

    def monitor(self):
        m = QEMUMonitorProtocol(self.sock)
        m.connect(negotiate=True)
        m.settimeout(60)
        return m

    def send(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_for(self, needle: bytes, count=1, start=0):
        fd = self.proc.stdout.fileno()
        while self.output.count(needle, start) < count:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"timed out waiting for {needle!r}\noutput tail:\n{self.output[-3000:].decode('utf-8', 'replace')}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    pytest.fail(f"rivet closed its output before {needle!r} (exit {self.proc.wait()})\n"
                                f"output tail:\n{self.output[-3000:].decode('utf-8', 'replace')}\n"
                                f"stderr: {self.proc.stderr.read().decode('utf-8', 'replace')}")
                self.output += data
        return self.output.index(needle, start) + len(needle)

    def finish(self):
        try:
            out, err = self.proc.communicate(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"rivet did not exit\noutput tail:\n{self.output[-3000:].decode('utf-8', 'replace')}")
        self.output += out
        self.stderr += err
        return self.proc.returncode

    def tail(self):
        """What the machine printed last, for assertion messages."""
        return (f"output tail:\n{self.output[-2000:].decode('utf-8', 'replace')}\n"
                f"stderr: {self.stderr.decode('utf-8', 'replace')[-2000:]}")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def quit_and_close(mon):
    """quit, then close the monitor; rivet closes the socket as it exits, which the client may see first."""
    mon.cmd("quit")
    try:
        mon.close()
    except EOFError:
        pass


def wait_event(mon, name):
    """The next event called `name` (others are skipped), within the monitor's timeout."""
    while True:
        ev = mon.pull_event(wait=60)
        if ev is None:
            pytest.fail(f"no {name} event")
        if ev["event"] == name:
            return ev


class RawClient:
    """A QMP client speaking raw JSON over the socket, for the protocol's error cases."""

    def __init__(self, sock, negotiate=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(60)
        self.s.connect(str(sock))
        self.buf = b""
        self.greeting = self.recv()
        if negotiate:
            self.send(b'{"execute": "qmp_capabilities"}\n')
            assert self.recv() == {"return": {}}

    def send(self, raw: bytes):
        self.s.sendall(raw)

    def recv(self, skip_events=True):
        while True:
            while b"\n" not in self.buf:
                data = self.s.recv(65536)
                if not data:
                    raise EOFError("QMP socket closed")
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            msg = json.loads(line)
            if skip_events and "event" in msg:
                continue
            return msg

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.send(json.dumps(msg).encode() + b"\n")
        return self.recv()

    def close(self):
        self.s.close()
