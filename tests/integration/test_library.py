"""Rivet as a Swift library (docs/library.md): the example programs built with the release build, run
against the real default guest, and a separate consumer package that depends on Rivet by path.

The example binaries sit beside RIVET_BIN (swift build -c release builds them with rivet)."""
import os
import pathlib
import re
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def example(rivet_bin, name):
    path = pathlib.Path(rivet_bin).parent / name
    assert path.is_file(), f"{path} missing: swift build -c release builds it with rivet"
    return path


def test_ask_example_boots_the_guest_and_prints_its_answer(rivet_bin, guest_dir):
    env = dict(os.environ, RIVET_GUEST=str(guest_dir))
    # The guest's shell computes the answer: the typed line holds only the expression.
    p = subprocess.run([str(example(rivet_bin, "rivet-example-ask")), "echo", "$((6*7))-$(uname", "-m)"],
                       capture_output=True, timeout=300, env=env)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    assert p.stdout.decode() == "42-riscv64\n"


def test_four_guests_in_one_process_each_answer_on_their_own_console(rivet_bin, guest_dir):
    env = dict(os.environ, RIVET_GUEST=str(guest_dir))
    p = subprocess.run([str(example(rivet_bin, "rivet-example-many")), "4"], capture_output=True, timeout=900, env=env)
    out = p.stdout.decode(errors="replace")
    assert p.returncode == 0, out + p.stderr.decode(errors="replace")
    assert re.findall(r"^guest (\d): answer-(\d+)$", out, re.M) == [
        ("0", "1007"), ("1", "2007"), ("2", "3007"), ("3", "4007")]
    assert "all 4 guests answered and powered off" in out


def mirror_dependencies(package_dir):
    """Points the consumer's copies of Rivet's GitHub dependencies at the clones the release build made
    (.build/repositories), so resolving needs no network."""
    repositories = REPO / ".build" / "repositories"
    assert repositories.is_dir(), f"{repositories} missing: build Rivet first (swift build -c release)"
    for url in re.findall(r'\.package\(url: "([^"]+)"', (REPO / "Package.swift").read_text()):
        name = url.rstrip("/").split("/")[-1].removesuffix(".git")
        clones = [d for d in repositories.iterdir() if d.name.startswith(name + "-")]
        assert clones, f"no clone of {url} in {repositories}"
        subprocess.run(["swift", "package", "config", "set-mirror", "--original", url, "--mirror", str(clones[0])],
                       cwd=package_dir, check=True, capture_output=True)


def test_another_package_can_depend_on_rivetkit_by_version(tmp_path):
    """A package that depends on Rivet by URL and version resolves, sees the RivetKit product, and gets a
    build plan: SwiftPM refuses that plan when a target of a versioned dependency has unsafeFlags. The
    plan is made without compiling (building Rivet twice would double the test command's build time)."""
    clone = tmp_path / "rivet"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True, capture_output=True)
    subprocess.run(["git", "tag", "99.0.0"], cwd=clone, check=True, capture_output=True)
    consumer = tmp_path / "consumer"
    (consumer / "Sources" / "Consumer").mkdir(parents=True)
    (consumer / "Package.swift").write_text(f'''// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "Consumer",
    dependencies: [.package(url: "{clone}", from: "99.0.0")],
    targets: [.executableTarget(name: "Consumer", dependencies: [.product(name: "RivetKit", package: "rivet")])]
)
''')
    (consumer / "Sources" / "Consumer" / "main.swift").write_text(
        "import RivetKit\nlet console = MemoryConsole()\nprint(MachineConfiguration().memorySize)\n")
    mirror_dependencies(consumer)

    def swift(*args):
        p = subprocess.run(["swift", *args], cwd=consumer, capture_output=True, timeout=600)
        return p.returncode, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")

    code, text = swift("package", "resolve")
    assert code == 0, text
    code, text = swift("package", "describe", "--type", "json")
    assert code == 0 and '"RivetKit"' in text, text
    code, text = swift("build", "--print-manifest-job-graph")
    assert code == 0, text
    assert "Consumer.build" in text and "unsafe build flags" not in text, text
