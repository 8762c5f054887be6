"""`rivet user` running real programs: exec in all its forms and the /proc files a process reads about itself
(tests/user/procexec.c), binfmt_misc registration in a private namespace, and the guest build's static riscv64
busybox as a shell, an HTTP client and an HTTP server on loopback, compared with qemu-riscv64 where qemu-user
can run the same thing (qemu is given binfmt_misc inside a private user namespace so that it, too, can exec
RISC-V programs)."""
import functools
import http.server
import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
QEMU = shutil.which("qemu-riscv64")
MAGIC = (r"\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xf3\x00:"
         r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff")

PROCEXEC_EXPECTED = """PR_SET_NAME: 0
PR_GET_NAME: guest-main-name
comm: guest-main-name
thread name: sleeper-thr
threads in forked child: 1
cmdline: [prog] [arg1]
auxv: pagesz=1 entry=1
maps: stack=1 main in r-x=1 program named=1
cpuinfo isa rv64: 1
exe is the program: 1
getrusage: 0
sched_getscheduler: 0 max fifo prio: 99
rseq: -1 errno=Function not implemented
child argv: [renamed] [child] [a b]
exec /proc/self/exe: 7
child argv: [renamed] [child] [a b]
exec relative path: 7
child argv: [path] [child] [./script.sh] [extra]
exec #! script: 7
child argv: [renamed] [child] [a b]
execveat dir: 7
child argv: [renamed] [child] [a b]
execveat AT_EMPTY_PATH: 7
exec directory: -1 Permission denied
"""


def run(cmd, cwd, env=None, timeout=60, stdin=None):
    e = dict(os.environ, LANG="C", LC_ALL="C")
    e.update(env or {})
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, env=e, input=stdin)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


@pytest.fixture(scope="session")
def procexec(tmp_path_factory):
    out = tmp_path_factory.mktemp("procexec")
    for variant, flags in (("static", ["-static"]), ("dyn", [])):
        subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-Wall", *flags, "-o", str(out / variant),
                        str(REPO / "tests/user/procexec.c"), "-lpthread"], check=True)
    return out


@pytest.mark.parametrize("variant", ["static", "dyn"])
def test_exec_forms_and_proc_self(rivet_bin, procexec, tmp_path, variant):
    shutil.copy(procexec / variant, tmp_path / "procexec")
    rc, out, err = run([str(rivet_bin), "user", "./procexec", "arg1"], tmp_path)
    assert (rc, out) == (0, PROCEXEC_EXPECTED), err


def test_thread_name_visible_to_host(rivet_bin, procexec, tmp_path):
    """prctl(PR_SET_NAME) names the host thread that runs the guest thread: ps and /proc show it."""
    script = tmp_path / "name.c"
    script.write_text('#include <sys/prctl.h>\n#include <unistd.h>\n#include <stdio.h>\n'
                      'int main(void) { prctl(PR_SET_NAME, "guest-visible"); puts("named"); fflush(stdout);'
                      ' sleep(30); return 0; }\n')
    subprocess.run(["riscv64-linux-gnu-gcc", "-static", "-o", str(tmp_path / "name"), str(script)], check=True)
    p = subprocess.Popen([str(rivet_bin), "user", str(tmp_path / "name")], stdout=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"named\n"
        comms = [pathlib.Path(f"/proc/{p.pid}/task/{t}/comm").read_text().strip()
                 for t in os.listdir(f"/proc/{p.pid}/task")]
        assert "guest-visible" in comms
    finally:
        p.kill()
        p.wait()


def test_vdso_clock(rivet_bin, tmp_path):
    """The vDSO is mapped and used: monotonic time agrees with the system call and with the host's clock."""
    subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-static", "-o", str(tmp_path / "vdso"),
                    str(REPO / "tests/user/vdso.c")], check=True)
    before = time.monotonic_ns()
    rc, out, err = run([str(rivet_bin), "user", "--strace", str(tmp_path / "vdso")], tmp_path)
    after = time.monotonic_ns()
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[:5] == ["AT_SYSINFO_EHDR set: 1, ELF: 1", "[vdso] in maps: 1",
                         "monotonic went backwards: 0, vDSO and syscall far apart: 0",
                         "woke before an absolute deadline: 0", "realtime sane: 1"]
    assert before <= int(lines[5].split()[1]) <= after
    # 20 000 readings through the vDSO, 200 through the system call (the mixed-in ones, plus the last two).
    assert 200 <= err.count(" clock_gettime(") < 300


def test_bad_arguments_fail_cleanly_as_under_qemu(rivet_bin, tmp_path):
    subprocess.run(["riscv64-linux-gnu-gcc", "-O1", "-static", "-o", str(tmp_path / "badcalls"),
                    str(REPO / "tests/user/badcalls.c")], check=True)
    r = run([str(rivet_bin), "user", str(tmp_path / "badcalls")], tmp_path)
    q = run([QEMU, str(tmp_path / "badcalls")], tmp_path)
    assert r[:2] == q[:2]
    assert r[0] == 0 and r[1].count(": -1 ") == 12


def serve_host_clients(cmd, count, cwd):
    """Starts an epoll server program, connects `count` host clients at once, checks every echo."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd)
    try:
        line = p.stdout.readline().decode()
        assert line.startswith("port "), p.stderr.read().decode()
        port = int(line.split()[1])
        socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
        for i, s in enumerate(socks):
            s.sendall(f"client {i}".encode())
        good = 0
        for i, s in enumerate(socks):
            want = f"echo client {i}".encode()
            got = b""
            while len(got) < len(want):
                chunk = s.recv(256)
                if not chunk:
                    break
                got += chunk
            good += got == want
        for s in socks:
            s.close()
        assert p.wait(timeout=60) == 0, p.stderr.read().decode()
        return good, p.stdout.read().decode()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_epoll_server_serves_many_host_clients(rivet_bin, tmp_path):
    subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-static", "-o", str(tmp_path / "epollsrv"),
                    str(REPO / "tests/user/epollsrv.c")], check=True)
    r = serve_host_clients([str(rivet_bin), "user", str(tmp_path / "epollsrv"), "200"], 200, tmp_path)
    q = serve_host_clients([QEMU, str(tmp_path / "epollsrv"), "200"], 200, tmp_path)
    assert r == q == (200, "accepted 200 served 200 all open at once 1\n")


DNS_SERVER = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    q, peer = s.recvfrom(512)
    ident, flags, qd = struct.unpack(">HHH", q[:6])
    end = 12
    while q[end]:
        end += q[end] + 1
    question = q[12:end + 5]
    name = []
    i = 12
    while q[i]:
        name.append(q[i + 1:i + 1 + q[i]].decode()); i += q[i] + 1
    qtype = struct.unpack(">H", q[end + 1:end + 3])[0]
    if ".".join(name) == "www.rivet.test" and qtype == 1:
        answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 9, 8, 7])
        s.sendto(struct.pack(">HHHHHH", ident, 0x8180, 1, 1, 0, 0) + question + answer, peer)
    else:  # NXDOMAIN
        s.sendto(struct.pack(">HHHHHH", ident, 0x8183, 1, 0, 0, 0) + question, peer)
"""


def test_name_resolution_through_sysroot_files_and_dns(rivet_bin, tmp_path):
    """getaddrinfo reads hosts/nsswitch/resolv.conf from the sysroot and asks a DNS server over UDP; the
    server runs on 127.0.0.1:53 inside a private network namespace, so nothing leaves the test."""
    if subprocess.run(["unshare", "--user", "--map-root-user", "--net", "true"], capture_output=True).returncode != 0:
        pytest.skip("user and network namespaces are not allowed here; a DNS server on port 53 needs its own")
    subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-o", str(tmp_path / "resolve"),
                    str(REPO / "tests/user/resolve.c")], check=True)
    root = tmp_path / "sysroot"
    (root / "etc").mkdir(parents=True)
    os.symlink("/usr/riscv64-linux-gnu/lib", root / "lib")
    (root / "etc/hosts").write_text("10.1.2.3 from-the-hosts-file\n")
    (root / "etc/nsswitch.conf").write_text("hosts: files dns\n")
    (root / "etc/resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
    (tmp_path / "dns.py").write_text(DNS_SERVER)
    script = f"""
ip link set lo up
python3 {tmp_path}/dns.py > {tmp_path}/dns.out 2>&1 &
server=$!
for i in $(seq 100); do grep -q ready {tmp_path}/dns.out 2>/dev/null && break; sleep 0.05; done
{rivet_bin} user --sysroot {root} {tmp_path}/resolve from-the-hosts-file www.rivet.test nothing.rivet.test
echo "status $?"
kill $server
"""
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--net", "sh", "-c", script],
                       capture_output=True, timeout=60, cwd=tmp_path)
    out = r.stdout.decode()
    assert out == ("from-the-hosts-file: 10.1.2.3\nwww.rivet.test: 10.9.8.7\n"
                   "nothing.rivet.test: Name or service not known\nstatus 1\n"), r.stderr.decode()


@pytest.mark.parametrize("runner", ["rivet", "qemu"])
def test_blocked_signals_from_outside_wait(rivet_bin, tmp_path, runner):
    """The guest's signal mask is the host's too: a blocked SIGTERM from outside does not end rivet, and
    signalfd, sigwaitinfo and sigpending see such signals; unblocked, its default action ends the process."""
    import signal
    subprocess.run(["riscv64-linux-gnu-gcc", "-O2", "-static", "-o", str(tmp_path / "extsig"),
                    str(REPO / "tests/user/extsig.c")], check=True)
    prefix = [str(rivet_bin), "user"] if runner == "rivet" else [QEMU]
    p = subprocess.Popen(prefix + [str(tmp_path / "extsig")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = []
        for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGTERM):
            while True:
                line = p.stdout.readline().decode()
                assert line, p.stderr.read().decode()
                if line.startswith("ready"):
                    break
                out.append(line)
            os.kill(p.pid, sig)
        out += p.stdout.read().decode().splitlines(keepends=True)
        assert p.wait(timeout=30) == -signal.SIGTERM
        assert "".join(out) == ("signalfd: 128 bytes, signal 10, from a user process: 1\n"
                                "sigwaitinfo: 15, from a user process: 1\n"
                                "SIGTERM pending while blocked; unblocking\n")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# --- binfmt_misc (namespaced since Linux 6.7: a private instance in a new user namespace)

def binfmt_namespace_available():
    r = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "--fork", "sh", "-c",
                        "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"], capture_output=True)
    return r.returncode == 0


@pytest.fixture(scope="session")
def private_binfmt():
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is missing")
    if not binfmt_namespace_available():
        pytest.skip("this kernel cannot mount a private binfmt_misc in a user namespace (needs Linux >= 6.7); "
                    "registering with the host's binfmt_misc would change every process on the machine")


def in_binfmt_namespace(script, cwd, timeout=60):
    """Runs a shell script in a new user+mount namespace with its own binfmt_misc mounted."""
    full = "set -e\nmount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc\n" + script
    return run(["unshare", "--user", "--map-root-user", "--mount", "--fork", "sh", "-c", full], cwd, timeout=timeout)


def test_binfmt_install_run_uninstall(rivet_bin, procexec, private_binfmt, tmp_path):
    shutil.copy(procexec / "static", tmp_path / "procexec")
    rivet = str(rivet_bin)
    rc, out, err = in_binfmt_namespace(f"""
{rivet} user --install-binfmt
cat /proc/sys/fs/binfmt_misc/rivet-riscv64
set +e
./procexec child x; echo "direct exit $?"
{rivet} user --install-binfmt; echo "second install $?"
{rivet} user --uninstall-binfmt
./procexec child x; echo "after uninstall $?"
{rivet} user --uninstall-binfmt; echo "second uninstall $?"
""", tmp_path)
    assert "registered rivet-riscv64" in out, err
    assert "flags: POCF" in out  # P, F and C (C implies O)
    assert "magic 7f454c460201010000000000000000000200f300" in out
    assert "mask ffffffffffffff00fffffffffffffffffeffffff" in out
    # Run directly: argv[0] is preserved (P), the program runs under rivet.
    assert "child argv: [path] [child] [x]\ndirect exit 7\n" in out
    assert "second install 1" in out and "already registered" in err
    assert "removed rivet-riscv64" in out
    assert "after uninstall 126" in out  # the shell: Exec format error
    assert "second uninstall 1" in out and "not registered" in err
    assert not (pathlib.Path(rivet).resolve().parent / "rivet-binfmt-riscv64").exists()


def test_user_help_documents_binfmt(rivet_bin, tmp_path):
    rc, out, err = run([str(rivet_bin), "user", "--help"], tmp_path)
    assert rc == 0 and "--install-binfmt" in out and "--uninstall-binfmt" in out and "RIVET_SYSROOT" in out


def test_binfmt_errors_without_mount(rivet_bin, tmp_path):
    rc, out, err = run([str(rivet_bin), "user", "--install-binfmt", "--binfmt-misc", str(tmp_path)], tmp_path)
    assert rc == 1 and "binfmt_misc must be mounted" in err and err.count("\n") == 1


# --- busybox

@pytest.fixture(scope="session")
def busybox(guest_dir):
    path = guest_dir / "busybox"
    assert path.is_file(), f"{path} missing: rebuild the guest (bash guest/build.sh publishes busybox)"
    return path


@pytest.fixture
def applets(busybox, tmp_path):
    """A bin/ directory of busybox applet links (the only PATH the scripts get)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shutil.copy(busybox, bindir / "busybox")
    for name in ["sh", "ls", "cat", "sort", "uniq", "find", "xargs", "wc", "grep", "sed", "awk", "tr", "head",
                 "mkdir", "rm", "echo", "seq", "wget", "httpd", "nc", "md5sum", "cut", "tee", "sleep", "true",
                 "false", "env", "test", "printf", "touch", "expr"]:
        os.symlink("busybox", bindir / name)
    return bindir


SHELL_SCRIPT = r"""
set +m
mkdir -p tree/a/b tree/c
for i in 1 2 3 4 5; do echo "file $i" > tree/a/f$i.txt; done
echo deep > tree/a/b/deep.txt
printf 'pear\napple\npear\nfig\napple\npear\n' > fruit
echo "== pipelines"
sort fruit | uniq -c | sort -rn | awk '{print $2 "=" $1}'
cat fruit | grep -c pear
echo "== find | xargs"
find tree -name '*.txt' | sort | xargs cat | wc -l
find tree -type f -name 'f*' | xargs -n 2 echo | wc -l
echo "== redirections"
echo out > r1; echo more >> r1; cat < r1
ls /nonexistent-path 2> err.txt; echo "ls status $?"
test -s err.txt && echo "stderr captured"
{ echo grouped; echo lines; } | tr a-z A-Z
exec 3> fd3.txt; echo "via fd 3" >&3; exec 3>&-; cat fd3.txt
cat <<EOF
here document $((6 * 7))
EOF
echo "== subshells"
x=outer; (x=inner; echo "in $x"); echo "out $x"
v=$(echo captured | sed s/cap/CAP/); echo "$v"
( cd tree/a && ls | sort | head -2 )
( exit 3 ); echo "subshell status $?"
echo "== exit codes"
false; echo "false $?"
sh -c 'exit 42'; echo "sh -c $?"
./inner.sh a b; echo "script $?"
true | false; echo "pipeline $?"
echo "x" | md5sum | cut -c1-8
seq 1 100 | awk '{s += $1} END {print s}'
sh -c 'kill -TERM $$'; echo "killed $?"
echo "done"
exit 5
"""


def run_shell_under(runner, applets, tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    (d / "script.sh").write_text(SHELL_SCRIPT)
    inner = d / "inner.sh"
    inner.write_text(f"#!{applets}/sh\necho \"inner $# $1 $2\"\nexit 9\n")
    inner.chmod(0o755)
    env = {"PATH": str(applets), "HOME": str(d)}
    return runner(d, env)


def test_busybox_shell_script_matches_qemu(rivet_bin, applets, tmp_path):
    sh = str(applets / "sh")
    r_rc, r_out, r_err = run_shell_under(
        lambda d, env: run([str(rivet_bin), "user", sh, "script.sh"], d, env), applets, tmp_path, "rivet")
    if not binfmt_namespace_available():
        pytest.skip("the qemu oracle needs binfmt_misc in a private namespace (Linux >= 6.7) to exec applets")
    # qemu itself as the interpreter (no P flag: the applet gets its path as argv[0], which busybox accepts).
    reg = f":qemu-riscv64:M::{MAGIC}:{QEMU}:F"

    def qemu(d, env):
        env_str = " ".join(f"{k}={v}" for k, v in env.items())
        return in_binfmt_namespace(f"printf '%s' '{reg}' > /proc/sys/fs/binfmt_misc/register\n"
                                   f"cd {d}\nexec env -i {env_str} {sh} script.sh\n", d)
    q_rc, q_out, q_err = run_shell_under(qemu, applets, tmp_path, "qemu")
    assert r_out == q_out, r_err
    assert r_rc == q_rc == 5
    # The results are the shell's, not merely equal: spot-check them.
    assert "pear=3\napple=2\nfig=1\n" in r_out
    assert "inner 2 a b\nscript 9\n" in r_out
    assert "killed 143\n" in r_out and r_out.endswith("done\n")


@pytest.mark.parametrize("args", [["ifconfig", "lo"], ["ifconfig"], ["ip", "addr", "show", "lo"], ["ip", "route"]])
def test_busybox_network_tools_match_qemu(rivet_bin, busybox, tmp_path, args):
    """Interface ioctls (struct ifreq, SIOCGIFCONF's pointer) and netlink sockets, as qemu-user runs them."""
    def stable(result):  # traffic counters move between the two runs
        rc, out, err = result
        return rc, [l for l in out.splitlines() if not any(w in l for w in ("RX ", "TX ", "collisions"))], err
    r = stable(run([str(rivet_bin), "user", str(busybox), *args], tmp_path))
    q = stable(run([QEMU, str(busybox), *args], tmp_path))
    assert r == q and r[0] == 0 and r[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    payload = os.urandom(300_000)
    (root / "blob.bin").write_bytes(payload)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1], payload
    srv.shutdown()
    srv.server_close()


def test_busybox_wget_fetches_from_loopback(rivet_bin, applets, http_server, tmp_path):
    port, payload = http_server
    url = f"http://127.0.0.1:{port}/blob.bin"
    rc, out, err = run([str(rivet_bin), "user", str(applets / "wget"), "-q", "-O", "got.bin", url], tmp_path)
    assert rc == 0, err
    assert (tmp_path / "got.bin").read_bytes() == payload
    q_rc, _, q_err = run([QEMU, str(applets / "wget"), "-q", "-O", "qemu.bin", url], tmp_path)
    assert q_rc == 0, q_err
    assert (tmp_path / "qemu.bin").read_bytes() == payload
    rc, out, err = run([str(rivet_bin), "user", str(applets / "wget"), "-q", "-O", "-", url + ".missing"], tmp_path)
    q_rc, _, _ = run([QEMU, str(applets / "wget"), "-q", "-O", "-", url + ".missing"], tmp_path)
    assert rc == q_rc == 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("runner", ["rivet", "qemu"])
def test_busybox_httpd_serves_the_host(rivet_bin, applets, tmp_path, runner):
    """The same host requests get the same answers from httpd under rivet and under qemu-riscv64."""
    www = tmp_path / "www"
    www.mkdir()
    payload = os.urandom(200_000)
    (www / "data.bin").write_bytes(payload)
    (www / "index.html").write_text("<p>hello from riscv64 httpd</p>\n")
    port = free_port()
    prefix = [str(rivet_bin), "user"] if runner == "rivet" else [QEMU]
    p = subprocess.Popen(prefix + [str(applets / "httpd"), "-f", "-p", f"127.0.0.1:{port}", "-h", str(www)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert p.poll() is None, p.stderr.read().decode()
                assert time.monotonic() < deadline, "httpd did not start listening"
                time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        assert urllib.request.urlopen(base + "/", timeout=30).read() == b"<p>hello from riscv64 httpd</p>\n"
        # Several clients at once (httpd forks one child per connection).
        results = {}

        def fetch(i):
            results[i] = urllib.request.urlopen(base + "/data.bin", timeout=30).read()
        threads = [threading.Thread(target=fetch, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(results.get(i) == payload for i in range(8))
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/missing", timeout=30)
        assert e.value.code == 404
    finally:
        p.kill()
        p.wait()


@pytest.mark.parametrize("runner", ["rivet", "qemu"])
def test_busybox_nc_listens_for_the_host(rivet_bin, applets, tmp_path, runner):
    port = free_port()
    prefix = [str(rivet_bin), "user"] if runner == "rivet" else [QEMU]
    p = subprocess.Popen(prefix + [str(applets / "nc"), "-l", "-p", str(port)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert p.poll() is None, p.stderr.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.05)
        c.sendall(b"from the host\n")
        c.shutdown(socket.SHUT_WR)
        p.stdin.write(b"from the guest\n")
        p.stdin.close()
        got = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            got += chunk
        c.close()
        assert p.wait(timeout=30) == 0
        out = p.stdout.read()
        assert out == b"from the host\n"
        assert got == b"from the guest\n"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
