"""`rivet user`: every test program of tests/user, static and dynamic, must behave exactly as under Debian's
qemu-riscv64 (the oracle): same stdout, same exit status (or fatal signal), same files left behind."""
import os
import pathlib
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RIVET = os.path.abspath(os.environ.get("RIVET_BIN", str(REPO / ".build/release/rivet")))
SYSROOT = "/usr/riscv64-linux-gnu"
QEMU = shutil.which("qemu-riscv64")
PROGRAMS = ["hello", "files", "memory", "timeproc", "signals", "segv", "abort", "threads", "forkexec", "shared", "net", "sigwait", "remap", "guard"]

pytestmark = pytest.mark.skipif(QEMU is None or shutil.which("riscv64-linux-gnu-gcc") is None,
                                reason="needs qemu-user and gcc-riscv64-linux-gnu")


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    out = tmp_path_factory.mktemp("user-build")
    subprocess.run(["make", "-s", "-C", str(REPO / "tests/user"), f"OUT={out}"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def tree(root):
    """Files left in the working directory: relative path -> contents."""
    result = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            result[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            result[rel] = p.read_bytes()
        else:
            result[rel] = "dir"
    return result


def run(cmd, cwd, env=None):
    e = dict(os.environ, LANG="C")
    e.update(env or {})
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, env=e)
    return p.returncode, p.stdout


@pytest.mark.parametrize("variant", ["static", "dyn"])
@pytest.mark.parametrize("name", PROGRAMS)
def test_matches_qemu(build, tmp_path, name, variant):
    prog = str(build / f"{name}.{variant}")
    qdir, rdir = tmp_path / "qemu", tmp_path / "rivet"
    qdir.mkdir()
    rdir.mkdir()
    qenv = {}
    if name == "forkexec":
        # qemu-user cannot exec a RISC-V file without binfmt_misc: give it a host wrapper that does.
        wrapper = tmp_path / "exec-wrapper.sh"
        wrapper.write_text(f"#!/bin/sh\nexec {QEMU} -L {SYSROOT} -0 renamed-child {prog} \"$@\"\n")
        wrapper.chmod(0o755)
        qenv["RIVET_EXEC_PATH"] = str(wrapper)
    q_rc, q_out = run([QEMU, "-L", SYSROOT, prog, "arg1"], qdir, qenv)
    r_rc, r_out = run([RIVET, "user", "--sysroot", SYSROOT, prog, "arg1"], rdir)
    assert r_out.decode(errors="replace") == q_out.decode(errors="replace")
    assert r_rc == q_rc
    assert tree(rdir) == tree(qdir)


def test_static_pie_matches_qemu(build, tmp_path):
    prog = str(build / "spie.static")
    assert run([RIVET, "user", prog, "a", "b"], tmp_path) == run([QEMU, prog, "a", "b"], tmp_path)
    assert run([RIVET, "user", prog], tmp_path) == (9, b"static-pie: hello\n1\n")


def test_fatal_signal_is_rivets_own(build, tmp_path):
    rc, out = run([RIVET, "user", str(build / "segv.static")], tmp_path)
    assert rc == -11 and out == b"about to fault\n"


def test_env_and_argv(build, tmp_path):
    rc, out = run([RIVET, "user", "--env", "RIVET_T=set-by-flag", str(build / "forkexec.static"), "child"], tmp_path)
    assert rc == 42
    assert b"env RIVET_T=set-by-flag" in out


def test_strace_prints_calls(build, tmp_path):
    p = subprocess.run([RIVET, "user", "--strace", str(build / "hello.static")], cwd=tmp_path,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 3
    err = p.stderr.decode()
    assert "write(0x1," in err and "= 10" in err
    assert "exit_group(0x3) = ?" in err


def test_unknown_program_is_one_line(tmp_path):
    p = subprocess.run([RIVET, "user", str(tmp_path / "missing")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode != 0
    assert p.stderr.decode().count("\n") == 1 and "cannot read the program" in p.stderr.decode()
