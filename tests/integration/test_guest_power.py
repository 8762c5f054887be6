"""The default guest powers off on `poweroff` and reboots on `reboot`, without -f, as on any Linux: busybox
asks PID 1 with a signal (USR2 power off, TERM reboot, USR1 halt) and the guest's /init acts on it."""
MARKER = b"RIVET-GUEST: init reached"
PROMPT = b"# "


def test_poweroff_from_the_shell_powers_off(rivet_session, guest_dir):
    s = rivet_session()
    s.wait_for(PROMPT, start=s.wait_for(MARKER))
    s.send(b"poweroff\n")
    code, out, err = s.finish()
    assert code == 0, out[-2000:] + err
    assert "RIVET-GUEST: powering off" in out, out[-2000:]


def test_reboot_from_the_shell_reboots_then_poweroff(rivet_session, guest_dir):
    s = rivet_session()
    s.wait_for(PROMPT, start=s.wait_for(MARKER))
    s.send(b"reboot\n")
    s.wait_for(PROMPT, start=s.wait_for(MARKER, count=2))
    s.send(b"poweroff\n")
    code, out, err = s.finish()
    assert code == 0, out[-2000:] + err
    assert out.count("RIVET-GUEST: rebooting") == 1 and out.count("OpenSBI v") == 2, out[-3000:]


def test_halt_and_poweroff_from_a_command(rivet_run, guest_dir):
    for cmd in ("halt", "poweroff"):
        r = rivet_run("--append", f"console=ttyS0 rivet.run={cmd};sleep,60;echo,NOT-REACHED", time_limit=60)
        assert r.returncode == 0, r.describe()
        lines = [l.strip() for l in r.stdout.splitlines()]
        assert "NOT-REACHED" not in lines and "RIVET-GUEST: powering off" in lines, r.describe()
