"""`rivet run` refuses bad start-up input with one line on stderr and exit status 1 (never a crash)."""
import os
import pathlib
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RIVET = os.path.abspath(os.environ.get("RIVET_BIN", str(REPO / ".build/release/rivet")))


def run(*args):
    return subprocess.run([RIVET, "run", *map(str, args)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def big_file(tmp_path):
    p = tmp_path / "big.bin"
    with open(p, "wb") as f:
        f.truncate(100 << 20)
    return p


@pytest.mark.parametrize("case", ["initrd", "kernel", "bios", "missing-kernel", "bad-drive-format",
                                  "missing-drive", "bad-drive-option", "bad-memory"])
def test_bad_input_is_one_line(case, big_file, tmp_path):
    small = tmp_path / "small.bin"
    small.write_bytes(b"\0" * 4096)
    args = {
        "initrd": ["--memory", "64M", "--kernel", small, "--initrd", big_file],
        "kernel": ["--memory", "64M", "--kernel", big_file],
        "bios": ["--memory", "64M", "--bios", big_file.with_name("none.bin"), "--kernel", small],
        "missing-kernel": ["--kernel", tmp_path / "nope"],
        "bad-drive-format": ["--kernel", small, "--drive", f"{small},format=vmdk"],
        "missing-drive": ["--kernel", small, "--drive", tmp_path / "nope.img"],
        "bad-drive-option": ["--kernel", small, "--drive", f"{small},cache=none"],
        "bad-memory": ["--memory", "12Q", "--kernel", small],
    }[case]
    r = run(*args)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rivet: "), r.stderr
