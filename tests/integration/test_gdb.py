"""The GDB remote stub, driven by the real gdb-multiarch in batch mode (docs/debugging.md).

rivet run -S --gdb: break at the kernel entry and at start_kernel (symbols from the guest's vmlinux),
step, read and write registers and memory (virtual and, through `monitor xp`, physical), hit a write
watchpoint, continue, interrupt with Ctrl-C, detach, and reach the shell; threads per hart; kill; a
hostile packet stream. rivet user -g: break in main of a C program and print a local variable.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

GDB = "gdb-multiarch"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, seconds=20):
    """Waits until something listens on 127.0.0.1:port (read from /proc/net/tcp: connecting would
    count as a gdb that came and went)."""
    want = f"0100007F:{port:04X}"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, "rivet exited before its gdb stub listened"
        with open("/proc/net/tcp") as f:
            if any(line.split()[1] == want and line.split()[3] == "0A" for line in f.readlines()[1:]):
                return
        time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port}")


def gdb_batch(commands, timeout=60):
    assert shutil.which(GDB), f"{GDB} is required (apt-get install gdb-multiarch)"
    argv = [GDB, "-batch", "-nx", "-ex", "set pagination off", "-ex", "set confirm off"]
    for c in commands:
        argv += ["-ex", c]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), argv


def finish(proc, argv, timeout=60):
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"gdb did not finish:\n{out}")
    return out


def test_kernel_debugging_session(rivet_session, guest_dir):
    vmlinux = guest_dir / "vmlinux"
    assert vmlinux.is_file(), f"the guest build has no vmlinux at {vmlinux}"
    image_head = (guest_dir / "Image").read_bytes()[:8]
    port = free_port()
    vm = rivet_session("-S", "--gdb", f"tcp:127.0.0.1:{port}", time_limit=80)
    wait_for_port(port, vm.proc)
    gdb, argv = gdb_batch([
        f"file {vmlinux}",
        f"target remote 127.0.0.1:{port}",
        "echo @@prelaunch\\n", "p/x $pc",
        "break *0x80200000", "continue",
        "echo @@entry\\n", "p/x $pc", "info registers priv",
        "echo @@memory\\n", "x/8xb 0x80200000",
        "echo @@phys\\n", "monitor xp 0x80200000 8",
        "delete", "stepi", "echo @@stepped\\n", "p/x $pc",
        "set $t0 = 0x1234abcd", "echo @@t0\\n", "p/x $t0",
        "break start_kernel", "continue",
        "echo @@banner\\n", "x/s (char *)&linux_banner",
        "info threads", "p/x $satp", "p/x $sp",
        "delete", "watch *(unsigned long *)&jiffies", "continue",
        "echo @@afterwatch\\n",
        "delete", "continue",
        "echo @@interrupted\\n", "info registers pc",
        "detach",
    ])
    # gdb continues without breakpoints; once the guest reaches init, Ctrl-C (SIGINT) stops it.
    vm.wait_for(b"RIVET-GUEST: init reached")
    time.sleep(0.5)
    gdb.send_signal(signal.SIGINT)
    out = finish(gdb, argv)
    sections = dict(re.findall(r"@@(\w+)\n(.*?)(?=@@|\Z)", out, re.S))
    assert "$1 = 0x80000000" in sections.get("prelaunch", ""), out
    assert "0x80200000" in sections["entry"] and "Supervisor" in sections["entry"], out
    expected = " ".join(f"0x{b:02x}" for b in image_head)
    assert expected in " ".join(sections["memory"].split()), out
    assert "80200000: " + " ".join(f"{b:02x}" for b in image_head) in sections["phys"], out
    # The Image header starts with a compressed instruction (the "MZ" magic), so one step moves 2 bytes.
    assert "= 0x80200002" in sections["stepped"], out
    assert "= 0x1234abcd" in sections["t0"], out
    assert "Breakpoint 2, " in out and "in start_kernel ()" in out, out
    assert "Linux version 6.1" in sections["banner"], out
    assert "Thread 1 (hart 0)" in sections["banner"], out
    assert "Hardware watchpoint 3: *(unsigned long *)&jiffies" in out and "Old value = " in out and "New value = " in out, out
    assert "Program received signal SIGINT" in sections["afterwatch"], out
    assert re.search(r"pc\s+0xffffffff8", sections["interrupted"]), out
    assert "detached" in out, out
    # After detach the guest runs on: the shell answers.
    vm.send(b"echo gdb-$((40+2))\n")
    vm.wait_for(b"gdb-42")


def test_threads_per_hart_and_kill(rivet_session):
    port = free_port()
    vm = rivet_session("-S", "--smp", "2", "--gdb", f"tcp::{port}", time_limit=40)
    wait_for_port(port, vm.proc)
    gdb, argv = gdb_batch([
        f"target remote :{port}",
        "info threads",
        "thread 2", "echo @@hart1\\n", "p/x $mhartid", "p/x $a0",
        "thread 1", "echo @@hart0\\n", "p/x $mhartid",
        "echo @@fcsr\\n", "info registers fcsr",
        "monitor help",
        "kill",
    ])
    out = finish(gdb, argv)
    assert "Thread 1 (hart 0)" in out and "Thread 2 (hart 1)" in out, out
    sections = dict(re.findall(r"@@(\w+)\n(.*?)(?=@@|\Z)", out, re.S))
    assert "= 0x1" in sections["hart1"].splitlines()[0] and "= 0x1" in sections["hart1"], out
    assert "= 0x0" in sections["hart0"], out
    assert "fcsr" in sections["fcsr"], out
    assert "monitor xp PHYSADDR" in out, out
    code, _, _ = vm.finish()
    assert code == 0, f"rivet should end on gdb's kill, exit {code}"


def test_hostile_packet_stream_gets_errors_not_a_crash(rivet_session):
    port = free_port()
    vm = rivet_session("-S", "--gdb", f"tcp::{port}", time_limit=30)
    wait_for_port(port, vm.proc)

    def packet(body):
        return b"$" + body + b"#" + f"{sum(body) % 256:02x}".encode()

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(packet(b"QStartNoAckMode"))
        junk = [b"$#zz", b"$m" + b"f" * 40 + b",ffffffff", b"\x00\xff" * 500, b"}}}}",
                b"$" + b"a" * 40000 + b"#00"]
        for j in junk:
            s.sendall(j)
        for body in (b"mffffffffffffffff,10", b"m80000000,ffffffffffffffff", b"Z0,", b"p", b"P1=", b"Hgzz",
                     b"G00", b"qXfer:features:read:target.xml:zz", b"vCont;q", b"X80000000,4:ab"):
            s.sendall(packet(body))
        s.sendall(packet(b"?"))
        data = b""
        deadline = time.monotonic() + 10
        while b"$T05" not in data and time.monotonic() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    replies = re.findall(rb"\$([^#]*)#", data)
    errors = [r for r in replies if r.startswith(b"E")]
    assert len(errors) >= 9, data
    assert any(r.startswith(b"T05") for r in replies), data
    # The machine is still there and answers a fresh gdb.
    gdb, argv = gdb_batch([f"target remote :{port}", "p/x $pc", "kill"])
    out = finish(gdb, argv)
    assert "= 0x80000000" in out, out
    assert vm.finish()[0] == 0


def test_user_program_break_in_main_and_print_local(tmp_path, rivet_bin):
    assert shutil.which("riscv64-linux-gnu-gcc"), "riscv64-linux-gnu-gcc is required"
    src = tmp_path / "demo.c"
    src.write_text("""#include <stdio.h>
int square(int v) { return v * v; }
int main(void) {
    int answer = 6 * 7;
    int sq = square(answer);
    printf("answer %d square %d\\n", answer, sq);
    return 0;
}
""")
    exe = tmp_path / "demo"
    subprocess.run(["riscv64-linux-gnu-gcc", "-g", "-O0", "-static", "-o", str(exe), str(src)], check=True, timeout=60)
    port = free_port()
    prog = subprocess.Popen([str(rivet_bin), "user", "-g", str(port), str(exe)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for_port(port, prog)
        gdb, argv = gdb_batch([
            f"file {exe}", f"target remote 127.0.0.1:{port}",
            "break main", "continue", "next",
            "echo @@local\\n", "p answer",
            "info threads",
            "break square", "continue",
            "echo @@arg\\n", "p v", "bt",
            "delete", "continue",
        ])
        out = finish(gdb, argv)
        stdout, _ = prog.communicate(timeout=30)
    finally:
        if prog.poll() is None:
            prog.kill()
    assert "Breakpoint 1, main () at" in out, out
    sections = dict(re.findall(r"@@(\w+)\n(.*?)(?=@@|\Z)", out, re.S))
    assert "$1 = 42" in sections["local"], out
    assert "(tid " in sections["local"], out
    assert "square (v=42)" in sections["arg"] and "$2 = 42" in sections["arg"], out
    assert "in main () at" in sections["arg"], out
    assert "exited normally" in out, out
    assert b"answer 42 square 1764" in stdout
    assert prog.returncode == 0
