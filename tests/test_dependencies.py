"""Dependencies: the production processes run without the `sandbox` extra, and the hashed locks
agree with pyproject.toml and with each other."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from service.cli.sandbox import SANDBOX_MODULES

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
DEV_LOCK = ROOT / "requirements" / "dev.txt"
RUNTIME_LOCK = ROOT / "requirements" / "runtime.txt"

# Prepended to the code a child interpreter runs: every import of the sandbox stack fails as if
# the extra were not installed.
HIDE_SANDBOX_STACK = f"""
import sys
HIDDEN = {SANDBOX_MODULES!r}

class Hidden:
    def __init__(self, finder):
        self.finder = finder

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HIDDEN:
            return None
        return self.finder.find_spec(name, path, target)

    def __getattr__(self, name):
        return getattr(self.finder, name)

sys.meta_path[:] = [Hidden(finder) for finder in sys.meta_path]
"""


def without_sandbox_stack(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", HIDE_SANDBOX_STACK + code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def locked(lock: Path) -> dict[str, str]:
    """name -> version of every package a lock pins (markers left out)."""
    pins: dict[str, str] = {}
    for match in re.finditer(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)", lock.read_text(), re.MULTILINE):
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def extra(name: str) -> list[Requirement]:
    return [Requirement(r) for r in PROJECT["optional-dependencies"][name]]


def test_production_code_imports_without_the_sandbox_stack():
    result = without_sandbox_stack(
        """
import importlib, pkgutil
import service, workers
for package in (service, workers):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
from service.cli import main
for command in ("web", "worker", "scheduler"):
    try:
        main([command, "--help"])
    except SystemExit as exc:
        assert exc.code == 0, (command, exc.code)
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in HIDDEN)
assert not loaded, loaded
"""
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("command", ["up", "sandbox"])
def test_local_commands_ask_for_the_sandbox_extra(command: str):
    result = without_sandbox_stack(f"from service.cli import main; main([{command!r}])")
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("nbrelay: error: ") and "install nbrelay[sandbox]" in line


def test_sandbox_modules_are_those_of_the_sandbox_extra():
    names = {canonicalize_name(r.name) for r in extra("sandbox")}
    assert names == {canonicalize_name(module) for module in SANDBOX_MODULES}


def test_dependencies_have_major_upper_bounds_that_admit_the_locked_versions():
    pins = locked(DEV_LOCK)
    for requirement in [Requirement(r) for r in PROJECT["dependencies"]] + extra("sandbox"):
        assert any(s.operator == "<" for s in requirement.specifier), requirement
        assert requirement.specifier.contains(pins[canonicalize_name(requirement.name)]), (
            requirement
        )


def test_runtime_lock_is_the_dev_lock_without_the_sandbox_and_test_packages():
    runtime, dev = locked(RUNTIME_LOCK), locked(DEV_LOCK)
    assert runtime.items() <= dev.items()
    for requirement in extra("sandbox") + extra("test"):
        assert canonicalize_name(requirement.name) not in runtime, requirement
    for requirement in PROJECT["dependencies"]:
        assert canonicalize_name(Requirement(requirement).name) in runtime, requirement


@pytest.mark.parametrize("lock", [DEV_LOCK, RUNTIME_LOCK], ids=lambda p: p.name)
def test_every_locked_package_is_pinned_with_hashes(lock: Path):
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text())
    requirements = [e for e in entries if not e.startswith("#")]
    assert requirements
    for entry in requirements:
        assert re.match(r"[A-Za-z0-9._-]+==\S+", entry), entry
        assert "--hash=sha256:" in entry, entry.splitlines()[0]
