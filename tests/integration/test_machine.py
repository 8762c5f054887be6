"""`rivet run` as a user sees it: boot, SMP, the console over pipes, disks, reboot, the device tree,
deterministic mode, and hostile bare-metal guests that must never crash or hang rivet.

Every run has a hard limit (rivet's --time-limit plus a subprocess timeout), so nothing can hang CI.
Fixtures (rivet_bin, guest_dir, rivet_run, rivet_session, hostile_build) are in conftest.py."""
import difflib
import hashlib
import re
import shutil
import subprocess

import pytest

MARKER = "RIVET-GUEST: init reached"
PROMPT = b"# "


def append(cmd):
    """Kernel command line running CMD in the guest (commas stand for spaces)."""
    return f"console=ttyS0 rivet.run={cmd}"


def boot(rivet_run, cmd, *args, time_limit=60):
    r = rivet_run(*args, "--append", append(cmd), time_limit=time_limit)
    assert r.returncode == 0, r.describe()
    assert MARKER in r.stdout, r.describe()
    return r


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def require(*tools):
    for t in tools:
        assert shutil.which(t), f"{t} is required by this test"


# ---------------------------------------------------------------- boot, SMP


def test_boot_shows_opensbi_and_init_and_powers_off_cleanly(rivet_run, guest_dir):
    r = boot(rivet_run, "true")
    assert "OpenSBI v" in r.stdout and "Platform Name" in r.stdout, r.describe()
    assert "RIVET-GUEST: run exit status 0" in r.stdout, r.describe()
    assert r.stdout.index("OpenSBI v") < r.stdout.index(MARKER)
    assert r.stderr == "", r.describe()


@pytest.mark.parametrize("harts", [2, 4])
def test_guest_sees_the_requested_number_of_harts(rivet_run, guest_dir, harts):
    r = boot(rivet_run, "nproc", "--smp", harts)
    lines = r.stdout.replace("\r", "").splitlines()
    status = lines.index("RIVET-GUEST: run exit status 0")
    assert lines[status - 1] == str(harts), r.describe()


@pytest.mark.parametrize("harts", ["9", "0"])
def test_bad_hart_count_is_a_one_line_error(rivet_run, guest_dir, harts):
    r = rivet_run("--smp", harts, "--append", append("true"), time_limit=10)
    assert r.returncode == 1, r.describe()
    assert r.stdout == "", r.describe()
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--smp" in lines[0], r.describe()


# ---------------------------------------------------------------- console


def test_interactive_shell_over_pipes(rivet_session, guest_dir):
    # Default command line: /init starts a shell on the console. Input typed before the shell is up can
    # be flushed by the guest's tty (on QEMU too), so wait for the prompt first.
    s = rivet_session()
    s.wait_for(PROMPT, start=s.wait_for(MARKER.encode()))
    s.send(b"echo hello; uname -m; poweroff -f\n")
    code, out, err = s.finish()
    lines = [l.strip("\r") for l in out.splitlines()]
    after = lines[[i for i, l in enumerate(lines) if MARKER in l][0]:]
    assert code == 0, out[-2000:] + err
    assert "hello" in after, out[-2000:]
    assert "riscv64" in after, out[-2000:]


def test_reboot_from_the_shell_boots_again(rivet_session, guest_dir):
    s = rivet_session()
    s.wait_for(PROMPT, start=s.wait_for(MARKER.encode()))
    s.send(b"reboot -f\n")
    s.wait_for(PROMPT, start=s.wait_for(MARKER.encode(), count=2))
    s.send(b"poweroff -f\n")
    code, out, err = s.finish()
    assert code == 0, out[-2000:] + err
    assert out.count(MARKER) == 2, out[-3000:]
    assert out.count("OpenSBI v") == 2, out[-3000:]


# ---------------------------------------------------------------- disks


def make_ext4(path, size="16M", files=None):
    require("mkfs.ext4", "debugfs")
    subprocess.run(["truncate", "-s", size, str(path)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(path)], check=True, timeout=60)
    for name, content in (files or {}).items():
        src = path.parent / f"host-{name}"
        src.write_text(content)
        subprocess.run(["debugfs", "-w", "-R", f"write {src} {name}", str(path)], check=True,
                       capture_output=True, timeout=60)


def debugfs_cat(image, name):
    p = subprocess.run(["debugfs", "-R", f"cat /{name}", str(image)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def fsck_clean(image):
    p = subprocess.run(["e2fsck", "-fn", str(image)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, f"e2fsck found problems:\n{p.stdout}\n{p.stderr}"


def test_guest_file_on_a_raw_ext4_disk_is_readable_on_the_host(rivet_run, guest_dir, tmp_path):
    img = tmp_path / "disk.raw"
    make_ext4(img)
    content = "rivet-disk-check-7f3a91"
    boot(rivet_run, f"mkdir,-p,/mnt;mount,/dev/vda,/mnt&&echo,{content}>/mnt/file&&sync&&umount,/mnt",
         "--drive", f"{img},format=raw")
    assert debugfs_cat(img, "file") == content + "\n"
    fsck_clean(img)


def test_drives_are_named_in_command_line_order(rivet_run, guest_dir, tmp_path):
    # As on QEMU: the first --drive is /dev/vda, the second /dev/vdb, the third /dev/vdc.
    drives = []
    for name in ("first", "second", "third"):
        img = tmp_path / f"{name}.raw"
        img.write_bytes(f"drive-{name}\n".encode().ljust(1 << 20, b"\0"))
        drives += ["--drive", f"{img},format=raw"]
    r = boot(rivet_run, "for,d,in,a,b,c;do,echo,vd$d=$(head,-n,1,/dev/vd$d);done", *drives)
    out = r.stdout.replace("\r", "")
    for dev, name in (("vda", "first"), ("vdb", "second"), ("vdc", "third")):
        assert f"{dev}=drive-{name}" in out, r.describe()


def test_readonly_drive_refuses_writes_and_leaves_the_file_alone(rivet_run, guest_dir, tmp_path):
    img = tmp_path / "ro.raw"
    make_ext4(img, files={"hello": "read-only-content-19\n"})
    before = sha256(img)
    r = boot(rivet_run,
             "mkdir,-p,/mnt;mount,-o,ro,/dev/vda,/mnt&&cat,/mnt/hello;umount,/mnt;"
             "echo,RO=$(cat,/sys/block/vda/ro);"
             "dd,if=/dev/zero,of=/dev/vda,bs=4096,count=1,conv=fsync;echo,DD=$?",
             "--drive", f"{img},format=raw,readonly")
    out = r.stdout.replace("\r", "")
    assert "read-only-content-19\n" in out, r.describe()
    assert "RO=1\n" in out, r.describe()
    dd = re.search(r"^DD=(\d+)$", out, re.M)
    assert dd and dd.group(1) != "0", r.describe()
    assert sha256(img) == before


def rivet_has_img_create(rivet_bin):
    p = subprocess.run([str(rivet_bin), "img", "create", "--help"], capture_output=True, text=True, timeout=30)
    return p.returncode == 0 and "Backing file" in p.stdout


def test_guest_writes_to_a_qcow2_overlay_leave_the_base_identical(rivet_run, rivet_bin, guest_dir, tmp_path):
    require("qemu-img")
    if not rivet_has_img_create(rivet_bin):
        pytest.xfail("this rivet binary has no `rivet img create` yet")
    base = tmp_path / "base.raw"
    make_ext4(base, files={"old": "base-content\n"})
    before = sha256(base)
    overlay = tmp_path / "overlay.qcow2"
    p = subprocess.run([str(rivet_bin), "img", "create", "-f", "qcow2", "-b", str(base), "-F", "raw", str(overlay)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stdout + p.stderr
    r = boot(rivet_run, "mkdir,-p,/mnt;mount,/dev/vda,/mnt&&cat,/mnt/old&&echo,overlay-content-5>/mnt/new"
                        "&&rm,/mnt/old&&sync&&umount,/mnt", "--drive", f"{overlay},format=qcow2")
    assert "base-content" in r.stdout, r.describe()
    assert sha256(base) == before, "the guest's writes reached the base image"
    check = subprocess.run(["qemu-img", "check", str(overlay)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    flat = tmp_path / "flat.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(overlay), str(flat)], check=True, timeout=60)
    assert debugfs_cat(flat, "new") == "overlay-content-5\n"
    fsck_clean(flat)


# ---------------------------------------------------------------- device tree


def test_dtb_out_is_a_clean_device_tree_of_the_machine(rivet_run, guest_dir, tmp_path):
    require("dtc")
    dtb = tmp_path / "virt.dtb"
    cmdline = append("true")
    r = rivet_run("--smp", "4", "--memory", "512M", "--dtb-out", dtb, "--append", cmdline)
    assert r.returncode == 0 and MARKER in r.stdout, r.describe()  # it boots on after writing the tree
    p = subprocess.run(["dtc", "-I", "dtb", "-O", "dts", str(dtb)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0 and p.stderr == "", f"dtc complained:\n{p.stderr}"
    dts = p.stdout
    chosen = re.search(r"\bchosen \{(.*?)\};", dts, re.S)
    assert chosen and f'bootargs = "{cmdline}";' in chosen.group(1), dts
    cpus = re.search(r"\bcpus \{(.*)", dts, re.S).group(1)
    assert sorted(re.findall(r"^\t\tcpu@(\w+) \{", cpus, re.M)) == ["0", "1", "2", "3"], dts
    assert dts.count("riscv,isa = ") == 4, dts
    assert "reg = <0x00 0x80000000 0x00 0x20000000>;" in dts, "memory node does not say 512M"


# ---------------------------------------------------------------- deterministic mode


@pytest.mark.parametrize("harts,cmd", [
    (1, "true"),
    (2, "date;cat,/proc/uptime;head,-c,32,/dev/urandom|od,-x;sleep,1;cat,/proc/uptime"),
])
def test_icount_runs_repeat_byte_for_byte(rivet_run, guest_dir, harts, cmd):
    runs = [boot(rivet_run, cmd, "--icount", "--smp", harts) for _ in range(2)]
    a, b = (r.stdout_bytes for r in runs)
    if a != b:
        diff = "\n".join(difflib.unified_diff(runs[0].stdout.splitlines(), runs[1].stdout.splitlines(),
                                              "run 1", "run 2", lineterm="", n=1))
        pytest.fail(f"two --icount runs printed different console output:\n{diff}")


# ---------------------------------------------------------------- hostile guests

# A hostile run may end by the time limit (exit 2) or by a power-off the random code requested; it may
# never die by a signal, report an internal error, or run past its limit.
HOSTILE_SLACK = 3.0


# The first parameter's default value in each program's source, checked before patching so that a
# changed layout fails loudly instead of patching code.
PARAM_DEFAULTS = {"faults.bin": 1, "garbage.bin": 0x9E3779B97F4A7C15, "mmio_fuzz.bin": 0x2545F4914F6CDD1D}


def patch(binary, out, values):
    """Writes little-endian 64-bit parameters at byte offsets 8, 16, ... of a hostile program."""
    data = bytearray(binary.read_bytes())
    assert int.from_bytes(data[8:16], "little") == PARAM_DEFAULTS[binary.name], f"{binary.name}: parameter block moved"
    for i, v in enumerate(values):
        data[8 + 8 * i:16 + 8 * i] = (v & (2**64 - 1)).to_bytes(8, "little")
    out.write_bytes(bytes(data))
    return out


@pytest.fixture
def dummy_kernel(tmp_path):
    k = tmp_path / "dummy-kernel"
    k.write_bytes(bytes.fromhex("6f000000"))  # j . (never reached: the programs own the machine)
    return k


def run_hostile(rivet_run, bios, kernel, *args, time_limit):
    return rivet_run("--bios", bios, "--kernel", kernel, *args, time_limit=time_limit, timeout=time_limit + 8)


def assert_clean_end(r, time_limit):
    assert r.returncode >= 0, f"rivet died by signal {-r.returncode}\n{r.describe()}"
    assert "Fatal error" not in r.stderr, r.describe()
    assert r.elapsed < time_limit + HOSTILE_SLACK, f"ran {r.elapsed:.1f} s past a {time_limit} s limit\n{r.describe()}"
    if r.returncode == 2:
        assert "time limit" in r.stderr, r.describe()
    else:  # a power-off requested by the guest prints nothing on stderr
        assert r.stderr == "", r.describe()


@pytest.mark.parametrize("mode,what", [
    (1, "fetch from unmapped memory, mtvec there too"),
    (2, "fetch from the UART, mtvec there too"),
    (3, "instruction straddling the end of RAM"),
    (4, "load fault whose handler is the same load"),
    (5, "illegal instruction that is its own handler"),
    (6, "S-mode fetch through an unmapped page table"),
    (7, "vectored timer interrupt into unmapped memory"),
])
def test_endless_trap_loop_stops_at_the_time_limit(rivet_run, hostile_build, dummy_kernel, tmp_path, mode, what):
    prog = patch(hostile_build / "faults.bin", tmp_path / f"faults{mode}.bin", [mode])
    r = run_hostile(rivet_run, prog, dummy_kernel, time_limit=1.5)
    assert_clean_end(r, 1.5)
    assert r.returncode == 2, f"{what}: expected the time limit to end it\n{r.describe()}"
    assert "FAULTS: starting" in r.stdout


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("harts", [1, 2])
def test_jump_to_garbage(rivet_run, hostile_build, dummy_kernel, tmp_path, seed, harts):
    prog = patch(hostile_build / "garbage.bin", tmp_path / "garbage.bin", [seed * 0x9E3779B1])
    r = run_hostile(rivet_run, prog, dummy_kernel, "--smp", harts, time_limit=1.5)
    assert_clean_end(r, 1.5)
    assert "GARBAGE: jumping" in r.stdout


@pytest.mark.parametrize("seed,harts", [(0x1234567, 1), (0x2468ace, 2), (0x5eed, 2)])
def test_random_mmio_writes_to_every_device(rivet_run, hostile_build, dummy_kernel, tmp_path, seed, harts):
    disk = tmp_path / "scratch.raw"
    disk.write_bytes(bytes(1 << 20))
    prog = patch(hostile_build / "mmio_fuzz.bin", tmp_path / "fuzz.bin", [seed, 4_000_000, harts])
    r = run_hostile(rivet_run, prog, dummy_kernel, "--smp", harts, "--drive", f"{disk},format=raw", time_limit=30)
    assert_clean_end(r, 30)
    assert r.returncode == 0 and "MMIO-FUZZ: done" in r.stdout, r.describe()


def fnv1a(data):
    h = 2166136261
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


MALFORMED = [
    "desc_table_outside_ram", "desc_table_misaligned", "used_ring_in_mmio", "used_ring_past_ram_end",
    "queue_size_7", "queue_size_0", "queue_size_512", "queue_size_huge",
    "buffer_outside_ram", "buffer_huge_length", "buffer_past_ram_end", "buffer_address_wraps",
    "chain_loop", "chain_self_loop", "avail_far_ahead", "avail_one_past_size", "head_out_of_range",
    "next_out_of_range", "no_status_byte", "readable_after_writable", "chain_over_4gib", "notify_while_broken",
    "indirect_nested", "indirect_with_next", "indirect_length_17", "indirect_length_0", "indirect_outside_ram",
    "indirect_huge", "indirect_loop",
]
SURVIVE_ONLY = ["dma_over_descriptors", "dma_over_avail_and_used", "dma_with_overlapping_rings"]


@pytest.mark.parametrize("kind", ["raw", "raw-readonly", "qcow2"])
def test_hostile_virtio_blk_driver(rivet_run, hostile_build, dummy_kernel, tmp_path, kind):
    """Valid requests work, every malformed ring marks the device DEVICE_NEEDS_RESET without touching
    the disk or guest memory, and only the legal write (sector 2, on a writable disk) changes the disk."""
    disk_bytes = hashlib.shake_256(b"rivet hostile disk").digest(1 << 20)
    sector2 = bytes((i * 7 + 3) & 0xFF for i in range(512))
    raw = tmp_path / "disk.raw"
    raw.write_bytes(disk_bytes)
    if kind == "qcow2":
        require("qemu-img")
        drive = tmp_path / "disk.qcow2"
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(drive)], check=True, timeout=60)
        spec = f"{drive},format=qcow2"
    else:
        drive = raw
        spec = f"{raw},format=raw" + (",readonly" if kind == "raw-readonly" else "")
    r = run_hostile(rivet_run, hostile_build / "virtio_blk.bin", dummy_kernel, "--drive", spec, time_limit=20)
    assert_clean_end(r, 20)
    assert r.returncode == 0 and "VIRTIO-HOSTILE: done" in r.stdout, r.describe()

    cases = {}
    for line in r.stdout.splitlines():
        if line.startswith("V "):
            name, *fields = line.split()[1:]
            cases[name] = {k: int(v, 16) for k, v in (f.split("=") for f in fields)}
    problems = []

    def expect(name, ok, why):
        if name not in cases:
            problems.append(f"{name}: no report line")
        elif not ok(cases[name]):
            problems.append(f"{name}: {why}: {cases[name]}")

    healthy = lambda c: c["dev"] & 0x40 == 0 and c["dev"] & 0x4
    want_sum = fnv1a(disk_bytes[:512])
    for name in ("read0", "indirect_valid"):
        expect(name, lambda c: healthy(c) and c["used"] == 1 and c["blk"] == 0 and c["sum"] == want_sum,
               "a valid read of sector 0 must complete with the disk's data")
    readonly = kind == "raw-readonly"
    expect("write2", lambda c: healthy(c) and c["used"] == 1 and c["blk"] == (1 if readonly else 0),
           "a valid write completes OK, or IOERR on a read-only disk")
    for name in ("read_past_end", "read_straddling_end", "read_huge_sector", "read_partial_sector"):
        expect(name, lambda c: healthy(c) and c["used"] == 1 and c["blk"] == 1, "must complete with IOERR")
    expect("same_head_8_times", lambda c: healthy(c) and c["used"] == 8 and c["blk"] == 0, "8 completions")
    expect("notify_bad_queue", lambda c: healthy(c) and c["used"] == 0 and c["blk"] == 0xEE,
           "a notify of a queue that does not exist must do nothing")
    for name in MALFORMED:
        expect(name, lambda c: c["dev"] & 0x40 and c["used"] == 0 and c["blk"] == 0xEE,
               "must set DEVICE_NEEDS_RESET and complete nothing")
    for name in SURVIVE_ONLY:
        expect(name, lambda c: True, "")
    expect("queue_sel_out_of_range", lambda c: healthy(c) and c["max"] == 0 and c["ready"] == 0,
           "a queue that does not exist has QueueNumMax 0 and never becomes ready")
    expect("config_space", lambda c: c["past"] == 0 and c["capacity"] == len(disk_bytes) // 512,
           "config reads past the end are 0; capacity is the disk size in sectors")
    for name in ("legacy_driver_features", "unoffered_features"):
        expect(name, lambda c: c["dev"] & 0x8 == 0, "FEATURES_OK must not be accepted")
    assert not problems, "\n".join(problems) + "\n" + r.describe()

    if kind == "qcow2":
        check = subprocess.run(["qemu-img", "check", str(drive)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        after = tmp_path / "after.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(drive), str(after)], check=True, timeout=60)
        after = after.read_bytes()
    else:
        after = raw.read_bytes()
    want = disk_bytes if readonly else disk_bytes[:1024] + sector2 + disk_bytes[1536:]
    if after != want:
        changed = sorted({i // 512 for i in range(len(want)) if after[i] != want[i]})
        pytest.fail(f"disk differs from what the legal requests allow in sectors {changed[:20]}")
