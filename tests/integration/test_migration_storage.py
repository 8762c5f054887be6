"""Live migration and disks: copying the drives to a destination with its own images (QMP migrate with
"blk": true, QEMU's block migration), and handing a shared writable qcow2 image over (the destination
re-reads the image's tables when it takes it over). The guest writes to its disks throughout; the images
are checked afterwards with qemu-img compare / check and debugfs."""
import subprocess
import time

from qmp_helpers import Machine, quit_and_close
from test_migration import ask, boot_with_walk, free_port, migration_events, wait_status, walk_keeps_passing

PROMPT = b"# "
MARKER = b"RIVET-GUEST: init reached"


def ext4_image(path, size, fmt):
    """An ext4 file system in a raw or qcow2 image (made raw, converted)."""
    raw = path.with_suffix(".mkfs")
    subprocess.run(["truncate", "-s", size, str(raw)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(raw)], check=True, timeout=60)
    if fmt == "raw":
        raw.rename(path)
    else:
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt, str(raw), str(path)], check=True, timeout=60)
        raw.unlink()


def qemu_img(*args):
    return subprocess.run(["qemu-img", *map(str, args)], capture_output=True, text=True, timeout=120)


def log_lines(image, fmt, tmp_path):
    """The numbers in /log of the ext4 file system in `image`."""
    raw = image
    if fmt != "raw":
        raw = tmp_path / "log-check.raw"
        p = qemu_img("convert", "-U", "-f", fmt, "-O", "raw", image, raw)
        assert p.returncode == 0, p.stderr
    p = subprocess.run(["debugfs", "-R", "cat /log", str(raw)], capture_output=True, text=True, timeout=60)
    return p.stdout.split()


def stop_writer(m):
    """Stops the guest's writer loop; returns how many iterations it made."""
    at = ask(m, b"touch /tmp/stop", b"WRITER-DONE-")
    end = m.wait_for(b"\n", start=at)
    return int(m.output[at:end].strip())


WRITER = (b"(i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo $i >> /mnt/log; "
          b"dd if=/dev/urandom of=%s bs=16k count=1 %s conv=fsync 2>/dev/null; done; echo WRITER-DONE-$i) &\n")


def test_block_migration_copies_the_drives_to_the_destinations_own_images(rivet_bin, guest_dir, tmp_path):
    """Source: a qcow2 ext4 disk (a log appended to) and a raw disk (16 KiB random blocks written at
    moving offsets), both written all through the migration, and the A-B walk with 2 harts. Destination:
    fresh empty images from `rivet img create`, in the other format each, started with -S so it stays
    paused at the switch-over: then its images match the source's (qemu-img compare), the qcow2 one checks
    clean, and after cont the guest keeps writing to them; every log line is there at the end."""
    src_q, src_r = tmp_path / "src.qcow2", tmp_path / "src.raw"
    ext4_image(src_q, "64M", "qcow2")
    subprocess.run(["truncate", "-s", "32M", str(src_r)], check=True)
    dst_q, dst_r = tmp_path / "dst-vda.raw", tmp_path / "dst-vdb.qcow2"
    for img, fmt, size in ((dst_q, "raw", "64M"), (dst_r, "qcow2", "32M")):
        p = subprocess.run([str(rivet_bin), "img", "create", "-f", fmt, str(img), size], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
    src = boot_with_walk(rivet_bin, tmp_path / "a.sock", "--smp", 2,
                         "--drive", f"{src_q},format=qcow2", "--drive", f"{src_r},format=raw")
    ask(src, b"mkdir -p /mnt && mount /dev/vda /mnt && echo mounted-$((1+1))", b"mounted-2")
    src.send(WRITER % (b"/dev/vdb", b"seek=$((i*7%2000))"))
    time.sleep(0.5)
    port = free_port()
    dest = Machine(rivet_bin, tmp_path / "b.sock", "--smp", 2, "--drive", f"{dst_q},format=raw",
                   "--drive", f"{dst_r},format=qcow2", "--incoming", f"tcp:127.0.0.1:{port}", "-S")
    mon = src.monitor()
    assert mon.cmd("migrate-set-parameters", **{"max-bandwidth": 64 << 20, "downtime-limit": 2000}) == {}
    assert mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port}", blk=True) == {}
    saw_disk_active = False
    while True:
        info = mon.cmd("query-migrate")
        if info["status"] in ("completed", "failed"):
            break
        saw_disk_active |= info["status"] == "active" and info["disk"]["total"] == 96 << 20
        time.sleep(0.05)
    assert info["status"] == "completed", info
    assert saw_disk_active
    disk = info["disk"]
    assert disk["total"] == 96 << 20 and disk["remaining"] == 0
    # Writes made during the migration went again: more than the first copy was sent.
    assert disk["transferred"] > disk["total"], disk
    statuses = migration_events(mon, until="completed")
    assert statuses[0] == "setup" and "active" in statuses
    assert mon.cmd("query-status")["status"] == "postmigrate"
    src_ram = mon.cmd("x-rivet-ram-hash")["hash"]
    quit_and_close(mon)
    assert src.finish() == 0, src.tail()

    # The switch-over point: the destination is paused with its drives flushed and the source's RAM.
    dmon = dest.monitor()
    # The destination completes once it has confirmed the stream, a moment after the source saw it.
    assert wait_status(dmon, ("completed",))["status"] == "completed"
    assert dmon.cmd("query-status")["status"] == "paused"
    assert dmon.cmd("x-rivet-ram-hash")["hash"] == src_ram
    for a, b, fa, fb in ((src_q, dst_q, "qcow2", "raw"), (src_r, dst_r, "raw", "qcow2")):
        p = qemu_img("compare", "-U", "-f", fa, "-F", fb, a, b)
        assert p.returncode == 0, p.stdout + p.stderr
    p = qemu_img("check", "-U", dst_r)
    assert p.returncode == 0, p.stdout + p.stderr
    assert dmon.cmd("cont") == {}
    walk_keeps_passing(dest)
    lines = stop_writer(dest)
    ask(dest, b"umount /mnt && echo unmounted-$((2+2))", b"unmounted-4")
    dmon.close()
    dest.send(b"poweroff -f\n")
    assert dest.finish() == 0, dest.tail()
    p = qemu_img("check", dst_r)
    assert p.returncode == 0, p.stdout + p.stderr
    assert log_lines(dst_q, "raw", tmp_path) == [str(i) for i in range(1, lines + 1)]
    assert lines > 10


def test_shared_writable_qcow2_image_is_handed_over(rivet_bin, guest_dir, tmp_path):
    """Shared storage with a writable qcow2 image: the guest allocates clusters (new and rewritten files,
    fsynced) before, during and after the migration. The destination opened the image before the source's
    last writes; it re-reads the tables when it takes over, so its own allocations afterwards do not
    collide with the source's: qemu-img check is clean and every log line is there. The stopped source
    cannot continue while the destination holds the image."""
    disk = tmp_path / "shared.qcow2"
    ext4_image(disk, "64M", "qcow2")
    drive = f"{disk},format=qcow2"
    src = Machine(rivet_bin, tmp_path / "a.sock", "--drive", drive)
    src.wait_for(PROMPT, start=src.wait_for(MARKER))
    ask(src, b"mkdir -p /mnt && mount /dev/vda /mnt && echo mounted-$((1+1))", b"mounted-2")
    src.send(WRITER % (b"/mnt/f$((i%300))", b""))
    time.sleep(1)
    port = free_port()
    dest = Machine(rivet_bin, tmp_path / "b.sock", "--drive", drive, "--incoming", f"tcp:127.0.0.1:{port}")
    mon = src.monitor()
    # Slow enough that the guest writes during several rounds.
    assert mon.cmd("migrate-set-parameters", **{"max-bandwidth": 16 << 20}) == {}
    assert mon.cmd("migrate", uri=f"tcp:127.0.0.1:{port}") == {}
    info = wait_status(mon, ("completed", "failed"))
    assert info["status"] == "completed", info
    assert "disk" not in info
    r = mon.cmd_raw("cont", {})
    assert "error" in r and "\n" not in r["error"]["desc"], r
    assert mon.cmd("query-status")["status"] == "postmigrate"
    quit_and_close(mon)
    assert src.finish() == 0, src.tail()
    # The destination keeps allocating for a while.
    start = len(dest.output)
    ask(dest, b"sleep 2; echo slept-$((3+3))", b"slept-6")
    lines = stop_writer(dest)
    ask(dest, b"umount /mnt && echo unmounted-$((2+2))", b"unmounted-4")
    dest.send(b"poweroff -f\n")
    assert dest.finish() == 0, dest.tail()
    assert b"I/O error" not in dest.output[start:] and b"EXT4-fs error" not in dest.output, dest.output[-2000:]
    p = qemu_img("check", disk)
    assert p.returncode == 0, p.stdout + p.stderr
    assert log_lines(disk, "qcow2", tmp_path) == [str(i) for i in range(1, lines + 1)]
    assert lines > 20
