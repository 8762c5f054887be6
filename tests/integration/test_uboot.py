"""Booting through Debian's U-Boot (qemu-riscv64_smode, package u-boot-qemu): OpenSBI (fw_jump or fw_dynamic)
starts U-Boot as the kernel; U-Boot's distro boot finds extlinux.conf on a virtio disk (MBR, one ext4
partition built with mkfs.ext4 -d), loads the guest's kernel and initramfs from it and boots Linux to
its /init."""
import pathlib
import shutil
import subprocess

import pytest

UBOOT = pathlib.Path("/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin")
OPENSBI = pathlib.Path("/usr/lib/riscv64-linux-gnu/opensbi/generic")
MARKER = "RIVET-GUEST: init reached"
SECTOR = 512
PARTITION_START = 2048  # sectors: 1 MiB, as partitioning tools align


def mbr(first_sector, sectors):
    """A DOS partition table with one bootable Linux partition."""
    entry = bytes([0x80, 0xFE, 0xFF, 0xFF, 0x83, 0xFE, 0xFF, 0xFF]) + first_sector.to_bytes(4, "little") + \
        sectors.to_bytes(4, "little")
    table = bytearray(SECTOR)
    table[440:444] = (0x52495654).to_bytes(4, "little")  # disk signature
    table[446:462] = entry
    table[510:512] = b"\x55\xaa"
    return bytes(table)


@pytest.fixture(scope="module")
def boot_disk(guest_dir, tmp_path_factory):
    assert UBOOT.is_file(), f"{UBOOT} is missing (apt-get install u-boot-qemu)"
    assert shutil.which("mkfs.ext4"), "mkfs.ext4 is required (apt-get install e2fsprogs)"
    d = tmp_path_factory.mktemp("uboot")
    root = d / "root"
    (root / "extlinux").mkdir(parents=True)
    shutil.copy(guest_dir / "Image", root / "Image")
    shutil.copy(guest_dir / "initramfs.cpio.gz", root / "initramfs.cpio.gz")
    (root / "extlinux/extlinux.conf").write_text(
        "default rivet\n"
        "label rivet\n"
        "    kernel /Image\n"
        "    initrd /initramfs.cpio.gz\n"
        "    append console=ttyS0 rivet.run=echo,booted-by-u-boot\n")
    payload = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    fs_bytes = ((payload * 3 // 2) // (1 << 20) + 8) << 20
    fs = d / "fs.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "rivetboot", "-d", str(root), str(fs), str(fs_bytes // 1024)],
                   check=True)
    disk = d / "disk.img"
    with open(disk, "wb") as out:
        out.write(mbr(PARTITION_START, fs_bytes // SECTOR))
        out.write(bytes(PARTITION_START * SECTOR - SECTOR))
        with open(fs, "rb") as src:
            shutil.copyfileobj(src, out)
    fs.unlink()
    return disk


@pytest.mark.parametrize("firmware", ["fw_jump.bin", "fw_dynamic.bin"])
def test_uboot_distro_boot_from_a_virtio_disk(rivet_run, boot_disk, firmware):
    r = rivet_run("--bios", OPENSBI / firmware, "--kernel", UBOOT, "--drive", f"{boot_disk},format=raw,readonly",
                  "--memory", "512M", time_limit=120)
    out = r.stdout
    assert "U-Boot 20" in out, r.describe()
    assert "extlinux.conf" in out, r.describe()  # distro boot found the configuration on the disk
    assert MARKER in out, r.describe()
    assert "booted-by-u-boot" in out.split(MARKER, 1)[1], r.describe()  # the command line came from extlinux.conf
    assert r.returncode == 0, r.describe()
