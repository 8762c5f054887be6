"""Crash safety: SIGKILL a writer at random moments during heavy random writes; every time the image must
pass qemu-img check without corruption (leaks allowed) and every write acknowledged by a completed flush
must read back (read with qemu-img, independent of rivet)."""
import os
import random
import signal
import subprocess
import time

import pytest

import os as _os
import sys as _sys
_sys.path.insert(0, _os.path.dirname(_os.path.abspath(__file__)))  # storage_helpers lives beside the tests

from storage_helpers import RIVET, qemu_check, qemu_img, require_tools, rivet

TRIALS = int(os.environ.get("RIVET_CRASH_TRIALS", "60"))
SECTOR = 512
BASE_TAG = 0xB0B0


def pattern(tag, sector):
    return (tag.to_bytes(8, "little") + sector.to_bytes(8, "little")) * 32


def parse_log(path):
    ops, last_flush = [], -1
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "f" and len(parts) == 2:
            last_flush = int(parts[1])
        elif parts[0] in ("w", "d") and len(parts) == 4:
            ops.append((parts[0], int(parts[1]), int(parts[2]), int(parts[3])))
        # A torn last line (killed mid-write of the log) is ignored: its op was never issued.
    return ops, last_flush


def verify(raw, ops, last_flush, sectors, base_tag=0):
    acked = {}      # sector -> tag of the last acknowledged op (0 = zeros)
    later = {}      # sector -> tags of ops after the last flush (may or may not have landed)
    for kind, idx, start, count in ops:
        tag = idx + 1 if kind == "w" else 0
        for s in range(start, start + count):
            if idx <= last_flush:
                acked[s] = tag
            else:
                later.setdefault(s, set()).add(tag)
    bad = []
    for s in range(sectors):
        data = raw[s * SECTOR:(s + 1) * SECTOR]
        allowed = {acked.get(s, base_tag)} | later.get(s, set())
        if data == bytes(SECTOR):
            got = 0
        else:
            got = int.from_bytes(data[:8], "little")
            if data != pattern(got, s):
                bad.append((s, "torn or foreign sector"))
                continue
        if got not in allowed:
            bad.append((s, f"holds op tag {got}, allowed {sorted(allowed)[:5]}"))
    return bad


@pytest.fixture(autouse=True)
def tools():
    require_tools()


def test_sigkill_during_random_writes_never_corrupts(tmp_path):
    rng = random.Random(20240601)
    clusters = [512, 4096, 65536]
    killed_mid_run = 0
    leaks_seen = 0
    for trial in range(TRIALS):
        cluster = clusters[trial % len(clusters)]
        img = tmp_path / f"t{trial}.qcow2"
        log = tmp_path / f"t{trial}.log"
        size = 8 << 20
        base_tag = 0
        if trial % 4 == 3:
            # Overlay on a raw base full of recognisable sectors: exercises copy-on-write from the backing file.
            base_tag = BASE_TAG
            base = tmp_path / f"t{trial}.base"
            base.write_bytes(b"".join(pattern(BASE_TAG, s) for s in range(size // SECTOR)))
            rivet("create", "-f", "qcow2", "-b", base.name, "-F", "raw", "-o", f"cluster_size={cluster}", img)
        else:
            rivet("create", "-f", "qcow2", "-o", f"cluster_size={cluster}", img, size)
        proc = subprocess.Popen([RIVET, "img", "stress", "--seed", str(1000 + trial), "--log", str(log),
                                 "--max-sectors", "128", str(img)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0.02, 0.6))
        if proc.poll() is None:
            killed_mid_run += 1
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode in (-signal.SIGKILL, 0), f"trial {trial}: writer failed: {err.decode()}"

        code, report = qemu_check(img)
        assert report.get("corruptions", 0) == 0 and code in (0, 3), f"trial {trial} (cluster {cluster}): {report}"
        leaks_seen += report.get("leaks", 0)
        raw = tmp_path / f"t{trial}.raw"
        qemu_img("convert", "-f", "qcow2", "-O", "raw", img, raw)
        ops, last_flush = parse_log(log)
        bad = verify(raw.read_bytes(), ops, last_flush, size // SECTOR, base_tag)
        assert not bad, f"trial {trial} (cluster {cluster}, last flush {last_flush}, {len(ops)} ops): {bad[:5]}"
        # Rivet's own check agrees that nothing is corrupt, and the image opens for writing again.
        assert rivet("check", img, check=False).returncode in (0, 3)
        for p in (img, log, raw):
            p.unlink()
    assert killed_mid_run >= TRIALS * 0.8, f"only {killed_mid_run} of {TRIALS} writers were killed mid-run"
