"""Networking as a user sees it: virtio-net with user-mode NAT (libslirp), port forwards, two guests on
a socket link, a tap device in a network namespace, and a hostile driver that must not hurt the host.

Peers are real: Python's HTTP server and plain sockets on the host's loopback, busybox wget/httpd/nc in
the default guest, another Rivet process. Every run has a hard time limit (see conftest.py)."""
import contextlib
import functools
import hashlib
import http.server
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

MARKER = "RIVET-GUEST: init reached"
PROMPT = b"# "


def append(cmd, *extra):
    return " ".join(["console=ttyS0", *extra, f"rivet.run={cmd}"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_server(directory, host="127.0.0.1"):
    """A threaded HTTP server on HOST serving DIRECTORY; yields its port."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer((host, 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def blob(n, seed=b"rivet network test"):
    return hashlib.shake_256(seed).digest(n)


def connect_retry(port, deadline):
    """Connects to 127.0.0.1:PORT, retrying while the guest side is not listening yet."""
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# ---------------------------------------------------------------- user-mode networking


def test_dhcp_gives_the_guest_10_0_2_15_with_gateway_and_dns(rivet_run, guest_dir):
    r = rivet_run("--nic", "user", "--append", append("ip,-4,addr,show,eth0;ip,route;cat,/etc/resolv.conf"))
    assert r.returncode == 0, r.describe()
    assert "RIVET-GUEST: net eth0 10.0.2.15/24 (dhcp)" in r.stdout, r.describe()
    assert "inet 10.0.2.15/24" in r.stdout, r.describe()
    assert "default via 10.0.2.2 dev eth0" in r.stdout, r.describe()
    assert "nameserver 10.0.2.3" in r.stdout, r.describe()
    assert r.stderr == "", r.describe()


def test_no_network_card_means_no_eth0_and_no_delay(rivet_run, guest_dir):
    r = rivet_run("--append", append("ls,/sys/class/net"))
    assert r.returncode == 0, r.describe()
    assert "RIVET-GUEST: net" not in r.stdout and "eth0" not in r.stdout, r.describe()


def test_guest_downloads_a_file_from_the_hosts_loopback_through_10_0_2_2(rivet_run, guest_dir, tmp_path):
    data = blob(3 << 20)
    (tmp_path / "blob.bin").write_bytes(data)
    with http_server(tmp_path) as port:
        r = rivet_run("--nic", "user", "--memory", "256M", "--append",
                      append(f"wget,-q,-O,/tmp/blob,http://10.0.2.2:{port}/blob.bin;sha256sum,/tmp/blob"),
                      time_limit=120)
    assert r.returncode == 0, r.describe()
    assert f"{hashlib.sha256(data).hexdigest()}  /tmp/blob" in r.stdout, r.describe()


def test_mac_address_and_a_custom_network(rivet_run, guest_dir):
    r = rivet_run("--netdev", "user,id=n0,net=192.168.76.0/24", "--device", "virtio-net,netdev=n0,mac=52:54:00:aa:bb:cc",
                  "--append", append("ip,link,show,eth0;ip,route"))
    assert r.returncode == 0, r.describe()
    assert "link/ether 52:54:00:aa:bb:cc" in r.stdout, r.describe()
    assert "RIVET-GUEST: net eth0 192.168.76.15/24 (dhcp)" in r.stdout, r.describe()
    assert "default via 192.168.76.2" in r.stdout, r.describe()


def test_host_reaches_servers_in_the_guest_through_hostfwd(rivet_session, guest_dir):
    """busybox httpd and nc in the guest, reached from the host's loopback; both directions checked."""
    http_port, nc_port = free_port(), free_port()
    s = rivet_session("--nic", f"user,hostfwd=tcp:127.0.0.1:{http_port}-:8080,hostfwd=tcp:127.0.0.1:{nc_port}-10.0.2.15:9000",
                      time_limit=120)
    s.wait_for(PROMPT, start=s.wait_for(b"RIVET-GUEST: net eth0 10.0.2.15/24 (dhcp)"))
    # Markers are computed ($((...))) so that the terminal's echo of the command does not match them.
    s.send(b"mkdir -p /tmp/www && seq 1 50000 > /tmp/www/seq.txt && httpd -p 8080 -h /tmp/www && echo HTTPD-$((6*7))\n")
    s.wait_for(b"HTTPD-42\r\n")
    expected = "".join(f"{i}\n" for i in range(1, 50001)).encode()
    deadline = time.monotonic() + 30
    with connect_retry(http_port, deadline) as c:
        c.sendall(b"GET /seq.txt HTTP/1.0\r\nHost: guest\r\n\r\n")
        reply = b""
        while chunk := c.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head
    assert body == expected

    # Host -> guest: 1 MiB into nc, checked by the guest's sha256sum.
    upload = blob(1 << 20, b"upload")
    mark = len(s.output)
    s.send(b"(nc -l -p 9000 </dev/null >/tmp/up; sha256sum /tmp/up) & sleep 0.5; echo NC-$((6*7))\n")
    s.wait_for(b"NC-42\r\n", start=mark)
    with connect_retry(nc_port, time.monotonic() + 30) as c:
        c.sendall(upload)
        c.shutdown(socket.SHUT_WR)
    s.wait_for(f"{hashlib.sha256(upload).hexdigest()}  /tmp/up".encode(), start=mark)
    s.send(b"poweroff -f\n")
    code, out, err = s.finish()
    assert code == 0, out[-2000:] + err


def test_two_cards_keep_command_line_order_as_eth0_and_eth1(rivet_run, guest_dir):
    r = rivet_run("--netdev", "user,id=a,net=10.0.5.0/24", "--device", "virtio-net,netdev=a,mac=52:54:00:00:05:0a",
                  "--nic", "user,net=10.0.6.0/24,mac=52:54:00:00:06:0b",
                  "--append", append("ip,link,show,eth1;udhcpc,-i,eth1,-q,-n,-s,/etc/udhcpc.script;ip,-4,addr,show,eth1"))
    assert r.returncode == 0, r.describe()
    assert "RIVET-GUEST: net eth0 10.0.5.15/24 (dhcp)" in r.stdout, r.describe()
    assert "link/ether 52:54:00:00:06:0b" in r.stdout and "inet 10.0.6.15/24" in r.stdout, r.describe()


def test_default_guest_serves_its_page_through_the_scripts_run_forward(rivet_session, guest_dir):
    """scripts/run starts with --nic user,hostfwd=tcp:127.0.0.1:8080-:80 (here on a free port): the default
    guest's httpd answers with its page."""
    port = free_port()
    s = rivet_session("--nic", f"user,hostfwd=tcp:127.0.0.1:{port}-:80", time_limit=90)
    s.wait_for(PROMPT, start=s.wait_for(b"RIVET-GUEST: net eth0 10.0.2.15/24 (dhcp)"))
    with connect_retry(port, time.monotonic() + 30) as c:
        c.sendall(b"GET / HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := c.recv(65536):
            reply += chunk
    assert b" 200 " in reply.split(b"\r\n")[0], reply[:300]
    assert b"Hello from the Rivet guest" in reply and b"inet 10.0.2.15/24" in reply, reply[:1000]
    s.send(b"poweroff -f\n")
    code, out, err = s.finish()
    assert code == 0, out[-2000:] + err


def test_scripts_run_starts_with_the_documented_forward():
    text = (pathlib.Path(__file__).resolve().parents[2] / "scripts/run").read_text()
    assert 'user,hostfwd=tcp:127.0.0.1:8080-:80' in text


def test_host_peers_that_hang_up_or_reset_do_not_hurt_rivet(rivet_run, guest_dir):
    """The guest streams to a host server that closes at once (with a reset), then talks to one that
    works: rivet survives (no SIGPIPE) and the network still works."""
    rude = socket.socket()
    rude.bind(("127.0.0.1", 0))
    rude.listen(8)
    stop = threading.Event()

    def hang_up():
        rude.settimeout(0.5)
        while not stop.is_set():
            try:
                c, _ = rude.accept()
            except OSError:
                continue
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()

    t = threading.Thread(target=hang_up, daemon=True)
    t.start()
    data = blob(100_000, b"after")
    try:
        with tempfile.TemporaryDirectory() as d:
            pathlib.Path(d, "after.bin").write_bytes(data)
            with http_server(d) as port:
                rude_port = rude.getsockname()[1]
                cmd = (f"for,i,in,1,2,3;do,dd,if=/dev/zero,bs=64k,count=64,2>/dev/null|nc,10.0.2.2,{rude_port};done;"
                       f"wget,-q,-O,-,http://10.0.2.2:{port}/after.bin|sha256sum")
                r = rivet_run("--nic", "user", "--append", append(cmd), time_limit=90)
    finally:
        stop.set()
        t.join()
        rude.close()
    assert r.returncode == 0, r.describe()
    assert hashlib.sha256(data).hexdigest() in r.stdout, r.describe()


def test_udp_hostfwd_delivers_a_datagram_to_the_guest(rivet_bin, guest_dir):
    port = free_port()
    argv = [str(rivet_bin), "run", "--time-limit", "60", "--nic", f"user,hostfwd=udp:127.0.0.1:{port}-:7000",
            "--append", append("echo,U-$((1+1));nc,-u,-l,-p,7000,</dev/null|head,-c,11")]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out = b""
        deadline = time.monotonic() + 60
        while b"U-2" not in out and time.monotonic() < deadline:
            out += os.read(p.stdout.fileno(), 65536)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            # Datagrams sent before nc listens are lost (UDP): repeat until the guest has one.
            while p.poll() is None and time.monotonic() < deadline:
                s.sendto(b"hello-udp!\n", ("127.0.0.1", port))
                time.sleep(0.3)
        rest, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    text = (out + rest).decode("utf-8", "replace")
    assert p.returncode == 0, text[-2000:] + err.decode()
    assert "\nhello-udp!" in text.replace("\r", ""), text[-2000:]


def test_hostfwd_on_a_busy_port_is_a_one_line_error(rivet_run, guest_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        r = rivet_run("--nic", f"user,hostfwd=tcp:127.0.0.1:{port}-:22", "--append", append("true"), time_limit=10)
    assert r.returncode == 1, r.describe()
    assert r.stdout == "", r.describe()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "hostfwd" in lines[0] and str(port) in lines[0], r.describe()


@pytest.mark.parametrize("args,needle", [
    (["--nic", "bogus"], "unsupported netdev type 'bogus'"),
    (["--netdev", "user,id=n0"], "no --device virtio-net,netdev=n0"),
    (["--netdev", "user,id=n0", "--device", "virtio-net,netdev=n1"], "no --netdev with id 'n1'"),
    (["--nic", "user,hostfwd=tcp::x-:22"], "'x' is not a port number"),
    (["--nic", "user,net=10.0.2.0/33"], "neither a prefix length nor a netmask"),
    (["--nic", "user,mac=01:00:00:00:00:01"], "multicast"),
    (["--nic", "user,colour=red"], "unknown option 'colour'"),
    (["--nic", "socket,id=s0"], "exactly one of listen="),
    (["--device", "e1000,netdev=n0"], "unsupported device 'e1000'"),
])
def test_bad_network_options_are_one_line_errors(rivet_run, guest_dir, args, needle):
    r = rivet_run(*args, "--append", append("true"), time_limit=10)
    assert r.returncode == 1, r.describe()
    assert r.stdout == "", r.describe()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.describe()


def test_socket_connect_to_nobody_is_a_one_line_error(rivet_run, guest_dir):
    port = free_port()
    r = rivet_run("--nic", f"socket,connect=127.0.0.1:{port}", "--append", append("true"), time_limit=10)
    assert r.returncode == 1, r.describe()
    assert "cannot connect" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.describe()


# ---------------------------------------------------------------- guest to guest


def test_two_guests_on_a_socket_link_exchange_a_file(rivet_session, rivet_run, guest_dir):
    port = free_port()
    a = rivet_session("--netdev", f"socket,id=l0,listen=127.0.0.1:{port}",
                      "--device", "virtio-net,netdev=l0,mac=52:54:00:00:07:01",
                      "--append", "console=ttyS0 rivet.ip=192.168.7.1/24", time_limit=120)
    a.wait_for(PROMPT, start=a.wait_for(b"RIVET-GUEST: net eth0 192.168.7.1/24 (static)"))
    a.send(b"mkdir -p /tmp/www && dd if=/dev/urandom of=/tmp/www/data bs=1024 count=768 2>/dev/null && "
           b"sha256sum /tmp/www/data && httpd -p 80 -h /tmp/www && echo SERVING-$((6*7))\n")
    a.wait_for(b"SERVING-42\r\n")
    served = re.search(rb"([0-9a-f]{64})  /tmp/www/data", a.output)
    assert served, a.output[-2000:]
    b = rivet_run("--netdev", f"socket,id=l0,connect=127.0.0.1:{port}",
                  "--device", "virtio-net,netdev=l0,mac=52:54:00:00:07:02",
                  "--append", append("ping,-c,2,192.168.7.1;wget,-q,-O,/tmp/data,http://192.168.7.1/data;sha256sum,/tmp/data",
                                     "rivet.ip=192.168.7.2/24"), time_limit=90)
    assert b.returncode == 0, b.describe()
    assert "RIVET-GUEST: net eth0 192.168.7.2/24 (static)" in b.stdout, b.describe()
    assert "2 packets transmitted, 2 packets received" in b.stdout, b.describe()
    assert f"{served.group(1).decode()}  /tmp/data" in b.stdout, b.describe()
    # The link works the other way too: A reaches B's address only while B runs, so check A saw B's ARP.
    mark = len(a.output)
    a.send(b"ip neigh show dev eth0; poweroff -f\n")
    code, out, err = a.finish()
    assert code == 0, out[-2000:] + err
    assert "192.168.7.2" in out[mark:] and "52:54:00:00:07:02" in out[mark:], out[-2000:]


def test_a_rivet_guest_and_a_qemu_guest_share_a_socket_link(rivet_session, guest_dir):
    """QEMU's -netdev socket is the peer: same stream format, frames both ways (ping, an HTTP download)."""
    qemu = shutil.which("qemu-system-riscv64")
    assert qemu, "qemu-system-riscv64 is required (apt-get install qemu-system-misc)"
    port = free_port()
    a = rivet_session("--netdev", f"socket,id=l0,listen=127.0.0.1:{port}",
                      "--device", "virtio-net,netdev=l0,mac=52:54:00:00:08:01",
                      "--append", "console=ttyS0 rivet.ip=192.168.8.1/24", time_limit=150)
    a.wait_for(PROMPT, start=a.wait_for(b"RIVET-GUEST: net eth0 192.168.8.1/24 (static)"))
    a.send(b"mkdir -p /tmp/www && seq 1 30000 > /tmp/www/seq && httpd -p 80 -h /tmp/www && echo UP-$((6*7))\n")
    a.wait_for(b"UP-42\r\n")
    cmd = "ping,-c,2,192.168.8.1;wget,-q,-O,/tmp/seq,http://192.168.8.1/seq;md5sum,/tmp/seq"
    q = subprocess.run([qemu, "-machine", "virt", "-m", "256M", "-nographic", "-bios",
                        "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin", "-kernel", str(guest_dir / "Image"),
                        "-initrd", str(guest_dir / "initramfs.cpio.gz"),
                        "-append", append(cmd, "rivet.ip=192.168.8.2/24"),
                        "-netdev", f"socket,id=l0,connect=127.0.0.1:{port}",
                        "-device", "virtio-net-device,netdev=l0,mac=52:54:00:00:08:02"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    out = q.stdout.decode("utf-8", "replace")
    assert "2 packets transmitted, 2 packets received" in out, out[-3000:]
    expected = hashlib.md5("".join(f"{i}\n" for i in range(1, 30001)).encode()).hexdigest()
    assert f"{expected}  /tmp/seq" in out, out[-3000:]
    a.send(b"poweroff -f\n")
    code, aout, err = a.finish()
    assert code == 0, aout[-2000:] + err


# ---------------------------------------------------------------- tap


@pytest.fixture
def netns():
    """A network namespace with a tap device rtap0 at 192.168.77.1/24 (the test runs as root)."""
    assert shutil.which("ip"), "ip (iproute2) is required"
    assert os.geteuid() == 0, "the tap test needs root (network namespaces)"
    name = f"rivet-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=20)
    try:
        for cmd in (["ip", "tuntap", "add", "dev", "rtap0", "mode", "tap"],
                    ["ip", "addr", "add", "192.168.77.1/24", "dev", "rtap0"],
                    ["ip", "link", "set", "rtap0", "up"],
                    ["ip", "link", "set", "lo", "up"]):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True, timeout=20)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=20)


def test_tap_device_in_a_network_namespace(rivet_bin, guest_dir, netns, tmp_path):
    data = blob(1 << 20, b"tap")
    (tmp_path / "tap.bin").write_bytes(data)
    port = 8000 + os.getpid() % 1000
    server = subprocess.Popen(["ip", "netns", "exec", netns, "python3", "-m", "http.server", "--bind", "192.168.77.1",
                               str(port), "--directory", str(tmp_path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        argv = ["ip", "netns", "exec", netns, str(rivet_bin), "run", "--time-limit", "90", "--nic", "tap,ifname=rtap0",
                "--append", append(f"ping,-c,1,192.168.77.1;wget,-q,-O,/tmp/t,http://192.168.77.1:{port}/tap.bin;sha256sum,/tmp/t",
                                   "rivet.ip=192.168.77.2/24")]
        p = subprocess.run(argv, capture_output=True, timeout=120)
    finally:
        server.kill()
        server.wait()
    out = p.stdout.decode("utf-8", "replace")
    assert p.returncode == 0, out[-3000:] + p.stderr.decode()
    assert "1 packets transmitted, 1 packets received" in out, out[-3000:]
    assert f"{hashlib.sha256(data).hexdigest()}  /tmp/t" in out, out[-3000:]


# ---------------------------------------------------------------- hostile driver


HEALTHY = ["random_frames", "runts", "giants", "malformed_packets", "rx_small_buffers_no_mrg", "rx_small_buffers_mrg"]
BROKEN = ["tx_buffer_outside_ram", "tx_buffer_address_wraps", "tx_buffer_past_ram_end", "tx_chain_loop",
          "tx_head_out_of_range", "tx_avail_far_ahead", "rx_buffer_read_only", "rx_buffer_outside_ram",
          "rx_buffer_smaller_than_header"]
ANSWERED = ["arp_first", "arp_after_frames", "arp_after_rings", "arp_last"]


def test_hostile_virtio_net_driver(rivet_run, hostile_build, tmp_path):
    """Garbage, runts, giants, malformed IP/TCP/UDP/DHCP/DNS/ARP and IP fragments go to libslirp;
    malformed rings break only the device; the gateway still answers ARP after each round."""
    kernel = tmp_path / "dummy-kernel"
    kernel.write_bytes(bytes.fromhex("6f000000"))
    r = rivet_run("--bios", hostile_build / "virtio_net.bin", "--kernel", kernel, "--nic", "user",
                  time_limit=60, timeout=75)
    assert r.returncode == 0, r.describe()
    assert "NET-HOSTILE: done" in r.stdout, r.describe()
    cases = {}
    for line in r.stdout.splitlines():
        if line.startswith("N "):
            name, *fields = line.split()[1:]
            cases[name] = {k: int(v, 16) for k, v in (f.split("=") for f in fields)}
    problems = []
    for name in HEALTHY + BROKEN + ANSWERED:
        if name not in cases:
            problems.append(f"{name}: no report line")
    for name in HEALTHY + ANSWERED:
        if name in cases and cases[name]["dev"] != 0xF:
            problems.append(f"{name}: device status {cases[name]['dev']:#x}, expected a healthy 0xf")
    for name in BROKEN:
        if name in cases and not cases[name]["dev"] & 0x40:
            problems.append(f"{name}: device status {cases[name]['dev']:#x}, expected DEVICE_NEEDS_RESET")
    for name in ANSWERED:
        if cases.get(name, {}).get("reply") != 1:
            problems.append(f"{name}: the gateway's ARP reply did not arrive")
    if "random_frames" in cases and cases["random_frames"]["tx"] != 300:
        problems.append(f"random_frames: {cases['random_frames']['tx']} of 300 chains completed")
    if cases.get("rx_small_buffers_no_mrg", {}).get("reply") != 0:
        problems.append("rx_small_buffers_no_mrg: a frame larger than its buffer was delivered")
    mrg = cases.get("rx_small_buffers_mrg", {})
    if not (mrg.get("pieces", 0) >= 3 and mrg.get("num_buffers") == mrg.get("pieces")):
        problems.append(f"rx_small_buffers_mrg: {mrg}")
    assert not problems, "\n".join(problems) + "\n" + r.describe()
    # The only message: fragments are kept away from libslirp.
    assert all("dropping IPv4 fragments" in l for l in r.stderr.strip().splitlines()), r.describe()
