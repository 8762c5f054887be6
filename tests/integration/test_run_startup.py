"""Start-up validation: what would leave the machine spinning silently in the firmware (an empty or foreign
kernel, a directory, RAM too small for what must be loaded) or running nothing (run-elf without a loadable
segment, an entry outside RAM) is refused before the machine starts, with one line on stderr and exit 1
(run) or 3 (run-elf, a bad file)."""
import os
import struct
import subprocess

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RIVET = os.environ.get("RIVET_BIN", os.path.join(REPO, ".build", "release", "rivet"))
SPIN = bytes.fromhex("6f000000")  # j .


def rivet(*args):
    assert os.access(RIVET, os.X_OK), f"rivet binary not found at {RIVET}"
    return subprocess.run([RIVET, *map(str, args)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)


def assert_one_line(p, code, *words):
    assert p.returncode == code, f"exit {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr}"
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    for w in words:
        assert w in lines[0], p.stderr


def riscv_image(image_size, payload=SPIN):
    """A RISC-V Linux Image header (boot-image-header.rst) whose image_size is `image_size`."""
    h = bytearray(64)
    h[0:4] = payload[:4]
    struct.pack_into("<QQQI", h, 8, 0x200000, image_size, 0, 2)
    h[48:56] = b"RISCV\0\0\0"
    h[56:60] = b"RSC\x05"
    return bytes(h) + b"\0" * 4096


@pytest.fixture
def files(tmp_path):
    spin = tmp_path / "spin.bin"
    spin.write_bytes(SPIN)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    arm = bytearray(4096)
    arm[56:60] = b"ARM\x64"
    (tmp_path / "arm64-Image").write_bytes(bytes(arm))
    x86 = bytearray(4096)
    x86[0x202:0x206] = b"HdrS"
    (tmp_path / "bzImage").write_bytes(bytes(x86))
    (tmp_path / "dir").mkdir()
    return tmp_path


@pytest.mark.parametrize("case,words", [
    ("empty-kernel", ["empty", "kernel"]),
    ("dir-kernel", ["is a directory"]),
    ("dir-initrd", ["is a directory"]),
    ("dir-bios", ["is a directory"]),
    ("empty-bios", ["firmware", "empty"]),
    ("x86-elf-kernel", ["not a RISC-V kernel", "machine 62"]),
    ("arm64-kernel", ["not a RISC-V kernel", "arm64"]),
    ("x86-kernel", ["not a RISC-V kernel", "x86"]),
    ("memory-too-small-for-kernel", ["--memory 32M is too small", "kernel (40 MiB"]),
    ("memory-too-small-for-initrd", ["--memory 32M is too small", "initrd (29 MiB)"]),
])
def test_bad_boot_files_are_refused_before_start(files, case, words):
    t = files
    big_initrd = t / "initrd.big"
    if case == "memory-too-small-for-initrd":
        with open(big_initrd, "wb") as f:
            f.truncate(29 << 20)
    kernel_big = t / "Image.big"
    kernel_big.write_bytes(riscv_image(40 << 20))
    args = {
        "empty-kernel": ["--bios", t / "spin.bin", "--kernel", t / "empty"],
        "dir-kernel": ["--bios", t / "spin.bin", "--kernel", t / "dir"],
        "dir-initrd": ["--bios", t / "spin.bin", "--kernel", t / "spin.bin", "--initrd", t / "dir"],
        "dir-bios": ["--bios", t / "dir", "--kernel", t / "spin.bin"],
        "empty-bios": ["--bios", t / "empty", "--kernel", t / "spin.bin"],
        "x86-elf-kernel": ["--bios", t / "spin.bin", "--kernel", "/bin/true"],
        "arm64-kernel": ["--bios", t / "spin.bin", "--kernel", t / "arm64-Image"],
        "x86-kernel": ["--bios", t / "spin.bin", "--kernel", t / "bzImage"],
        "memory-too-small-for-kernel": ["--memory", "32M", "--bios", t / "spin.bin", "--kernel", kernel_big],
        "memory-too-small-for-initrd": ["--memory", "32M", "--bios", t / "spin.bin", "--kernel", t / "spin.bin",
                                        "--initrd", big_initrd],
    }[case]
    p = rivet("run", *args, "--max-instructions", "1000")
    assert_one_line(p, 1, *words)


def test_a_riscv_image_that_fits_starts(files):
    t = files
    ok = t / "Image.ok"
    ok.write_bytes(riscv_image(8 << 20))
    p = rivet("run", "--memory", "32M", "--bios", t / "spin.bin", "--kernel", ok, "--max-instructions", "1000")
    assert p.returncode == 2 and "instruction limit" in p.stderr, p.stderr


def elf(entry, segments):
    """A minimal ELF64 RISC-V executable: `segments` is a list of (paddr, bytes)."""
    phoff, ehsize, phentsize = 64, 64, 56
    data_off = phoff + phentsize * len(segments)
    header = struct.pack("<4sBBBB8xHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 2, 243, 1, entry, phoff if segments else 0,
                         0, 0, ehsize, phentsize, len(segments), 64, 0, 0)
    phdrs, blobs = b"", b""
    for paddr, blob in segments:
        phdrs += struct.pack("<IIQQQQQQ", 1, 5, data_off + len(blobs), paddr, paddr, len(blob), len(blob), 4)
        blobs += blob
    return header + phdrs + blobs


@pytest.mark.parametrize("case,words", [
    ("no-segment", ["no loadable segment"]),
    ("entry-outside-ram", ["entry point 0x1000", "outside RAM"]),
])
def test_run_elf_refuses_what_cannot_run(tmp_path, case, words):
    f = tmp_path / f"{case}.elf"
    if case == "no-segment":
        f.write_bytes(elf(0x80000000, []))
    else:
        f.write_bytes(elf(0x1000, [(0x80000000, SPIN)]))
    p = rivet("run-elf", f, "--max-instructions", "1000")
    assert_one_line(p, 3, *words)
