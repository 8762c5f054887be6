"""Many guests per host (docs/density.md): the balloon's free page reporting gives freed guest memory back
(the rivet process's RSS drops), QMP balloon/query-balloon/BALLOON_CHANGE as QEMU's, --memory-merge marks
guest RAM mergeable (VmFlags `mg`), and clones restored from one snapshot share its pages (PSS about half
of RSS), with the balloon's state carried in the snapshot."""
import subprocess
import time

from qmp_helpers import Machine, quit_and_close, wait_event

MARKER = b"RIVET-GUEST: init reached"
PROMPT = b"# "
MiB = 1 << 20


def ask(m, command, answer):
    start = len(m.output)
    m.send(command + b"\n")
    return m.wait_for(answer, start=start + len(command))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def mappings(pid):
    """Each mapping of the process: (start, end, name, fields in kB, VmFlags)."""
    out, cur = [], None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()
            if "-" in head[0] and not head[0].endswith(":"):
                lo, hi = (int(x, 16) for x in head[0].split("-"))
                cur = {"start": lo, "end": hi, "name": head[5] if len(head) > 5 else "", "flags": []}
                out.append(cur)
            elif head[0] == "VmFlags:":
                cur["flags"] = head[1:]
            elif len(head) >= 2 and head[0].endswith(":") and head[1].isdigit():
                cur[head[0][:-1]] = int(head[1])
    return out


def boot(rivet_bin, sock, *args):
    m = Machine(rivet_bin, sock, *args)
    m.wait_for(PROMPT, start=m.wait_for(MARKER))
    ask(m, b"echo up-$((1+1))", b"up-2")
    return m


def test_freed_guest_memory_goes_back_to_the_host(rivet_bin, guest_dir, tmp_path):
    m = boot(rivet_bin, tmp_path / "q.sock", "--device", "virtio-balloon")
    try:
        ask(m, b"dd if=/dev/zero of=/tmp/big bs=1M count=96 2>/dev/null; echo filled-$((2+2))", b"filled-4")
        full = rss_kib(m.proc.pid)
        ask(m, b"rm /tmp/big; echo freed-$((3+3))", b"freed-6")
        # The guest reports free 4 MiB blocks a couple of seconds after they are freed; wait for the drop.
        deadline = time.monotonic() + 60
        rss = full
        while time.monotonic() < deadline:
            rss = rss_kib(m.proc.pid)
            if full - rss >= 64 * 1024:
                break
            time.sleep(0.5)
        assert full - rss >= 64 * 1024, f"RSS went from {full} KiB to only {rss} KiB after freeing 96 MiB"
        # The guest still works, and the memory it gave back is usable again (reads as zero, writes stick).
        ask(m, b"dd if=/dev/zero of=/tmp/again bs=1M count=64 2>/dev/null; md5sum /tmp/again", b"7f614da9329cd3aebf59b91aadc30bf0")
    finally:
        m.kill()


def test_qmp_balloon_target_events_and_snapshot(rivet_bin, guest_dir, tmp_path):
    m = boot(rivet_bin, tmp_path / "a.sock", "--device", "virtio-balloon")
    mon = m.monitor()
    assert mon.cmd("query-balloon") == {"actual": 256 * MiB}
    assert "balloon" in [c["name"] for c in mon.cmd("query-commands")]
    assert mon.cmd("balloon", value=160 * MiB) == {}
    while wait_event(mon, "BALLOON_CHANGE")["data"]["actual"] != 160 * MiB:
        pass
    assert mon.cmd("query-balloon") == {"actual": 160 * MiB}
    # The guest sees the pages gone from its free memory and keeps working.
    ask(m, b"echo total-$(awk '/MemTotal/ {print $2}' /proc/meminfo)", b"total-")
    snap = tmp_path / "vm.snap"
    assert mon.cmd("migrate", uri=f"file:{snap}") == {}
    quit_and_close(mon)
    assert m.finish() == 0, m.tail()

    r = Machine(rivet_bin, tmp_path / "b.sock", "--device", "virtio-balloon", "--incoming", f"file:{snap}")
    mon = r.monitor()
    assert mon.cmd("query-balloon") == {"actual": 160 * MiB}, "the balloon's state is in the snapshot"
    assert mon.cmd("balloon", value=256 * MiB) == {}
    while wait_event(mon, "BALLOON_CHANGE")["data"]["actual"] != 256 * MiB:
        pass
    ask(r, b"echo back-$((4+4))", b"back-8")
    quit_and_close(mon)
    r.finish()

    # Without a balloon device QMP answers as QEMU does; the stream refuses a machine without one.
    p = subprocess.run([str(rivet_bin), "run", "--time-limit", "30", "--incoming", f"file:{snap}"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "rivet: --incoming" in p.stderr, p.stderr


def test_balloon_is_refused_without_a_device_and_bad_options_are_one_line(rivet_bin, guest_dir, tmp_path):
    m = boot(rivet_bin, tmp_path / "n.sock")
    mon = m.monitor()
    for name, args in (("balloon", {"value": 64 * MiB}), ("query-balloon", None)):
        reply = mon.cmd_raw(name, args)
        assert reply["error"] == {"class": "DeviceNotActive", "desc": "No balloon device has been activated"}, reply
    quit_and_close(mon)
    m.finish()
    for bad in ("virtio-balloon,free-page-reporting=maybe", "virtio-balloon,size=3"):
        p = subprocess.run([str(rivet_bin), "run", "--time-limit", "10", "--device", bad],
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 1 and p.stderr.count("\n") == 1 and "virtio-balloon" in p.stderr, p.stderr


def mergeable_bytes(pid):
    return sum(x["end"] - x["start"] for x in mappings(pid) if "mg" in x["flags"])


def test_memory_merge_marks_guest_ram_mergeable(rivet_bin, guest_dir, tmp_path):
    m = boot(rivet_bin, tmp_path / "m.sock", "--memory-merge", "on")
    try:
        assert mergeable_bytes(m.proc.pid) == 256 * MiB, "exactly guest RAM is marked mergeable"
    finally:
        m.kill()
    m = boot(rivet_bin, tmp_path / "o.sock")
    try:
        assert mergeable_bytes(m.proc.pid) == 0
    finally:
        m.kill()
    p = subprocess.run([str(rivet_bin), "run", "--memory-merge", "sometimes"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "--memory-merge" in p.stderr, p.stderr


def test_clones_of_one_snapshot_share_its_pages(rivet_bin, guest_dir, tmp_path):
    m = boot(rivet_bin, tmp_path / "s.sock", "--memory-merge", "on")
    mon = m.monitor()
    snap = tmp_path / "base.snap"
    assert mon.cmd("migrate", uri=f"file:{snap}") == {}
    quit_and_close(mon)
    assert m.finish() == 0, m.tail()

    clones = [Machine(rivet_bin, tmp_path / f"c{i}.sock", "--memory-merge", "on", "--incoming", f"file:{snap}")
              for i in range(2)]
    try:
        for i, c in enumerate(clones):
            ask(c, f"hostname clone{i}; echo name-$(hostname)".encode(), f"name-clone{i}".encode())
        for c in clones:
            shared = [x for x in mappings(c.proc.pid) if x["name"] == str(snap)]
            assert shared, "restored RAM is mapped from the snapshot file"
            assert all("mg" in x["flags"] for x in shared), "--memory-merge applies to the restored mappings too"
            assert mergeable_bytes(c.proc.pid) == 256 * MiB
            rss = sum(x["Rss"] for x in shared)
            pss = sum(x["Pss"] for x in shared)
            assert rss > 8 * 1024, f"the clone uses the snapshot's pages ({rss} KiB)"
            assert pss <= 0.6 * rss, f"two clones share the snapshot's pages: PSS {pss} KiB of RSS {rss} KiB"
    finally:
        for c in clones:
            c.kill()
