#!/usr/bin/env python3
"""Network benchmark: Rivet next to QEMU (qemu-system-riscv64, TCG), both with user-mode networking
(libslirp) and the same default guest, in the same run. Called by bench/net.sh.

Per VM and repetition, one boot; the guest runs (rivet.run=...):
  httpd on :8080 serving /etc            -> request latency: sequential HTTP GETs of /etc/passwd from the
                                            host through a hostfwd, each on a new TCP connection
  nc -l -p 9000 | dd of=/dev/null        -> host-to-guest: the host sends MIB MiB through a hostfwd; timed
                                            from connect to the guest's "RECV-2" line on the console
  dd if=/dev/zero | nc 10.0.2.2 PORT     -> guest-to-host: the guest sends MIB MiB to a host socket; timed
                                            from accept to end of stream on the host
Byte counts are checked both ways (a short transfer is a failure, not a fast one).
Output: a table on stdout, JSON in bench/results/net.json.
"""
import argparse
import json
import os
import pathlib
import select
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
FW = "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_jump.bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Console:
    """Reads a VM's stdout in a thread; wait(text) blocks until the text appears."""

    def __init__(self, proc):
        self.proc, self.data, self.cond = proc, b"", threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        fd = self.proc.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            with self.cond:
                if not chunk:
                    self.closed = True
                    self.cond.notify_all()
                    return
                self.data += chunk
                self.cond.notify_all()

    def wait(self, text, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while text.encode() not in self.data:
                left = deadline - time.monotonic()
                if left <= 0 or getattr(self, "closed", False):
                    raise RuntimeError(f"no {text!r} on the console; tail:\n{self.data[-1500:].decode('utf-8', 'replace')}")
                self.cond.wait(min(left, 0.5))
            return time.monotonic()


def vm_command(kind, guest, fwd_http, fwd_nc, sink_port, mib):
    """kind: rivet (default MTU 65520), rivet-1500 (QEMU's MTU), or qemu."""
    cmd = ("httpd,-p,8080,-h,/etc;echo,NET-$((6*7));"
           "nc,-l,-p,9000,</dev/null|dd,of=/dev/null,bs=64k;echo,RECV-$((1+1));"
           f"dd,if=/dev/zero,bs=64k,count={mib * 16},2>/dev/null|nc,-w,1,10.0.2.2,{sink_port};echo,SEND-$((1+2));sleep,600")
    append = f"console=ttyS0 rivet.run={cmd}"
    fwds = f"hostfwd=tcp:127.0.0.1:{fwd_http}-:8080,hostfwd=tcp:127.0.0.1:{fwd_nc}-:9000"
    if kind.startswith("rivet"):
        mtu = ",mtu=1500" if kind == "rivet-1500" else ""
        return [os.environ.get("RIVET_BIN", str(HERE.parent / ".build/release/rivet")), "run", "--memory", "256M",
                "--nic", f"user,{fwds}{mtu}", "--append", append]
    return [os.environ.get("QEMU", "qemu-system-riscv64"), "-machine", "virt", "-m", "256M", "-smp", "1", "-nographic",
            "-bios", FW, "-kernel", f"{guest}/Image", "-initrd", f"{guest}/initramfs.cpio.gz", "-append", append,
            "-netdev", f"user,id=n0,{fwds}", "-device", "virtio-net-device,netdev=n0"]


def http_get(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
        c.sendall(b"GET /passwd HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := c.recv(65536):
            reply += chunk
    if b" 200 " not in reply.split(b"\r\n", 1)[0] or b"root:" not in reply:
        raise RuntimeError(f"bad HTTP reply {reply[:200]!r}")


def one_run(kind, guest, mib, requests):
    fwd_http, fwd_nc = free_port(), free_port()
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(1)
    proc = subprocess.Popen(vm_command(kind, guest, fwd_http, fwd_nc, sink.getsockname()[1], mib),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    con = Console(proc)
    try:
        con.wait("NET-42", 120)
        http_get(fwd_http)  # warm-up: first connection, ARP
        lat = []
        for _ in range(requests):
            t = time.monotonic()
            http_get(fwd_http)
            lat.append(time.monotonic() - t)

        payload = bytes(1 << 20)
        start = time.monotonic()
        with socket.create_connection(("127.0.0.1", fwd_nc), timeout=60) as c:
            for _ in range(mib):
                c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            end = con.wait("RECV-2", 300)
        text = con.data.decode("utf-8", "replace").replace("\r", "")
        count = text.split("\nRECV-2")[0].splitlines()[-1].split(" bytes")[0].strip()
        if count != str(mib << 20):
            raise RuntimeError(f"guest received {count} bytes, expected {mib << 20}")
        h2g = (mib << 20) / (end - start) / 1e6

        sink.settimeout(120)
        conn, _ = sink.accept()
        start, got = time.monotonic(), 0
        with conn:
            while chunk := conn.recv(1 << 20):
                got += len(chunk)
        end = time.monotonic()
        if got != mib << 20:
            raise RuntimeError(f"host received {got} bytes from the guest, expected {mib << 20}")
        g2h = got / (end - start) / 1e6
        con.wait("SEND-3", 60)
        return {"latency_ms": statistics.median(lat) * 1e3, "latency_p90_ms": sorted(lat)[int(len(lat) * 0.9)] * 1e3,
                "host_to_guest_MBps": h2g, "guest_to_host_MBps": g2h}
    finally:
        proc.kill()
        proc.wait()
        sink.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--guest", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--mib", type=int, default=32)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--out", default=str(HERE / "results/net.json"))
    a = ap.parse_args()
    kinds = ("rivet", "rivet-1500", "qemu")
    results = {k: [] for k in kinds}
    for rep in range(a.reps):
        for kind in kinds:  # interleaved, so load changes hit all
            print(f"[net] {kind} run {rep + 1}/{a.reps}", file=sys.stderr)
            r = one_run(kind, a.guest, a.mib, a.requests)
            print(f"[net]   {json.dumps({k: round(v, 2) for k, v in r.items()})}", file=sys.stderr)
            results[kind].append(r)
    rows = [("host_to_guest_MBps", "host -> guest (MB/s)", True), ("guest_to_host_MBps", "guest -> host (MB/s)", True),
            ("latency_ms", "HTTP request, median (ms)", False), ("latency_p90_ms", "HTTP request, p90 (ms)", False)]
    summary = {}
    print(f"{'metric':28} {'rivet':>9} {'rivet-1500':>11} {'qemu':>9} {'rivet/qemu':>11} {'rivet-1500/qemu':>16}")
    for key, label, higher_better in rows:
        v = {k: statistics.median(r[key] for r in results[k]) for k in kinds}
        summary[key] = v
        ratio = (lambda x: x / v["qemu"]) if higher_better else (lambda x: v["qemu"] / x)
        print(f"{label:28} {v['rivet']:9.2f} {v['rivet-1500']:11.2f} {v['qemu']:9.2f} {ratio(v['rivet']):10.2f}x {ratio(v['rivet-1500']):15.2f}x")
    print(f"(median of {a.reps}; {a.mib} MiB per transfer, {a.requests} requests; ratios > 1 mean rivet is better;"
          f" rivet uses MTU 65520 by default, rivet-1500 QEMU's 1500; load average {os.getloadavg()[0]:.1f})")
    out = pathlib.Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "runs": results, "mib": a.mib, "requests": a.requests,
                               "load": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
