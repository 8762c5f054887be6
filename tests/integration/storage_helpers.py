"""Shared helpers for the storage (rivet img) integration tests.

Runs the RELEASE rivet binary (RIVET_BIN, default <repo>/.build/release/rivet) and Debian's qemu-img/qemu-io
as the oracle. Missing tools are a test failure, never a silent skip.
"""
import json
import os
import random
import shutil
import subprocess

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RIVET = os.environ.get("RIVET_BIN", os.path.join(REPO, ".build", "release", "rivet"))


def require_tools():
    assert os.path.isfile(RIVET) and os.access(RIVET, os.X_OK), f"rivet binary not found at {RIVET} (build it or set RIVET_BIN)"
    for tool in ("qemu-img", "qemu-io"):
        assert shutil.which(tool), f"{tool} is required (apt-get install qemu-utils)"


def run(args, check=True, timeout=120, **kw):
    p = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}")
    return p


def rivet(*args, check=True, timeout=120):
    return run([RIVET, "img", *map(str, args)], check=check, timeout=timeout)


def qemu_img(*args, check=True, timeout=120):
    return run(["qemu-img", *map(str, args)], check=check, timeout=timeout)


def qemu_io(image, fmt, *commands, check=True):
    args = ["qemu-io", "-f", fmt]
    for c in commands:
        args += ["-c", c]
    return run(args + [str(image)], check=check)


def qemu_check(image):
    """Runs qemu-img check; returns (exit code, parsed json)."""
    p = qemu_img("check", "--output", "json", image, check=False)
    assert p.returncode in (0, 2, 3), f"qemu-img check failed to run ({p.returncode}): {p.stderr}"
    return p.returncode, json.loads(p.stdout)


def random_data(size, seed, zero_fraction=0.3, chunk=4096):
    """Data with a mix of random and all-zero chunks, reproducible from the seed."""
    rng = random.Random(seed)
    out = bytearray(size)
    for off in range(0, size, chunk):
        if rng.random() >= zero_fraction:
            out[off:off + chunk] = rng.randbytes(min(chunk, size - off))
    return bytes(out)


def read_via_rivet(tmp_path, image, name="out.raw"):
    """Flattens an image (whole chain) to raw with rivet and returns the bytes."""
    out = tmp_path / name
    if out.exists():
        out.unlink()
    rivet("convert", "-O", "raw", image, out)
    return out.read_bytes()
