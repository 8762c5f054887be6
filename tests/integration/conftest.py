"""Shared fixtures for the integration tests: the rivet binary, the default guest, running `rivet run`
with hard timeouts, and the hostile bare-metal programs.

Environment: RIVET_BIN (default <repo>/.build/release/rivet), RIVET_GUEST (default
${RIVET_CACHE:-~/.cache/rivet}/guest-default). A missing binary, guest or tool is a test failure, not a skip.
"""
import os
import pathlib
import select
import shutil
import subprocess
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
HOSTILE_DIR = pathlib.Path(__file__).resolve().parent / "hostile"


def _rivet_bin():
    return pathlib.Path(os.environ.get("RIVET_BIN", str(REPO / ".build/release/rivet")))


def _guest_dir():
    if "RIVET_GUEST" in os.environ:
        return pathlib.Path(os.environ["RIVET_GUEST"])
    cache = pathlib.Path(os.environ.get("RIVET_CACHE", str(pathlib.Path.home() / ".cache/rivet")))
    return cache / "guest-default"


@pytest.fixture(scope="session")
def rivet_bin():
    path = _rivet_bin()
    assert path.is_file() and os.access(path, os.X_OK), f"rivet binary not found at {path} (build it or set RIVET_BIN)"
    return path


@pytest.fixture(scope="session")
def guest_dir():
    d = _guest_dir()
    for name in ("Image", "initramfs.cpio.gz"):
        assert (d / name).is_file(), f"default guest missing {d / name} (run: bash guest/build.sh, or set RIVET_GUEST)"
    return d


class RunResult:
    """What one `rivet run` produced: exit code (negative = killed by a signal), raw output, elapsed time."""

    def __init__(self, args, returncode, stdout, stderr, elapsed):
        self.args, self.returncode, self.elapsed = args, returncode, elapsed
        self.stdout_bytes, self.stderr_bytes = stdout, stderr
        self.stdout = stdout.decode("utf-8", "replace")
        self.stderr = stderr.decode("utf-8", "replace")

    def describe(self, tail=3000):
        return (f"rivet {' '.join(map(str, self.args))}\nexit {self.returncode} after {self.elapsed:.1f} s\n"
                f"--- stdout (tail) ---\n{self.stdout[-tail:]}\n--- stderr ---\n{self.stderr[-tail:]}")


@pytest.fixture(scope="session")
def rivet_run(rivet_bin):
    """rivet_run(*args, time_limit=60, stdin=b"", timeout=None) runs `rivet run ARGS --time-limit T`.

    The subprocess gets a hard timeout (time_limit + 30 s by default) so a rivet that ignores its own
    limit still cannot hang the suite; that case is reported as a failure, with the output so far."""
    def run(*args, time_limit=60, stdin=b"", timeout=None):
        argv = [str(rivet_bin), "run", "--time-limit", str(time_limit), *map(str, args)]
        start = time.monotonic()
        try:
            p = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout or time_limit + 30)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"rivet ignored --time-limit {time_limit}: still running after {e.timeout} s\n"
                        f"{argv}\nstdout tail: {(e.stdout or b'')[-2000:]!r}")
        return RunResult(argv[2:], p.returncode, p.stdout, p.stderr, time.monotonic() - start)
    return run


class Session:
    """An interactive `rivet run` on pipes: send bytes, wait for text in the console output."""

    def __init__(self, argv, deadline_seconds):
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.deadline = time.monotonic() + deadline_seconds
        self.output = b""

    def send(self, data: bytes):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def wait_for(self, needle: bytes, count=1, start=0):
        """Reads output until `needle` has appeared `count` times at or after byte `start`; returns the
        offset just past that occurrence. Fails at the deadline or when rivet closes its output."""
        fd = self.proc.stdout.fileno()
        while self.output.count(needle, start) < count:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail(f"timed out waiting for {needle!r} x{count}\n{self.argv}\noutput tail:\n"
                            f"{self.output[-3000:].decode('utf-8', 'replace')}")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                data = os.read(fd, 65536)
                if not data:
                    pytest.fail(f"rivet closed its output before {needle!r} x{count} (exit {self.proc.wait()})\n"
                                f"output tail:\n{self.output[-3000:].decode('utf-8', 'replace')}")
                self.output += data
        end = start
        for _ in range(count):
            end = self.output.index(needle, end) + len(needle)
        return end

    def finish(self):
        """Closes stdin and waits for exit within the deadline; returns (exit code, full stdout, stderr)."""
        try:
            out, err = self.proc.communicate(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"rivet did not exit before the deadline\noutput tail:\n{self.output[-3000:].decode('utf-8', 'replace')}")
        self.output += out
        return self.proc.returncode, self.output.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def rivet_session(rivet_bin):
    """rivet_session(*args, time_limit=60) starts an interactive `rivet run`; killed at test end if still alive."""
    sessions = []

    def start(*args, time_limit=60):
        argv = [str(rivet_bin), "run", "--time-limit", str(time_limit), *map(str, args)]
        s = Session(argv, time_limit + 30)
        sessions.append(s)
        return s
    yield start
    for s in sessions:
        s.kill()


@pytest.fixture(scope="session")
def hostile_build(tmp_path_factory):
    """Builds tests/integration/hostile (make O=<tmp>) once; returns the output directory of *.bin files."""
    for tool in ("riscv64-unknown-elf-gcc", "riscv64-unknown-elf-objcopy", "make"):
        assert shutil.which(tool), f"{tool} is required (apt-get install gcc-riscv64-unknown-elf make)"
    out = tmp_path_factory.mktemp("hostile-build")
    p = subprocess.run(["make", "-s", "-C", str(HOSTILE_DIR), f"O={out}"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, f"building the hostile programs failed:\n{p.stdout}\n{p.stderr}"
    return out
