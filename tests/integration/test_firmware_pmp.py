"""OpenSBI sees the PMP Rivet implements (16 entries, 4-byte granularity, 54 address bits), programs it
to shut S-mode out of its own memory, and Linux still boots and powers off under those rules."""
import re


def test_opensbi_finds_the_pmp_and_linux_boots_under_its_rules(rivet_run, guest_dir):
    r = rivet_run("--append", "console=ttyS0 rivet.run=true", time_limit=60)
    assert r.returncode == 0, r.describe()
    found = dict(re.findall(r"Boot HART PMP (Count|Granularity|Address Bits)\s*:\s*(\d+)", r.stdout))
    assert found == {"Count": "16", "Granularity": "4", "Address Bits": "54"}, r.describe()
    assert "RIVET-GUEST: init reached" in r.stdout, r.describe()
