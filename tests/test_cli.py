import subprocess
import sys
from pathlib import Path

from service import __version__

NBRELAY = str(Path(sys.executable).with_name("nbrelay"))


def test_version():
    result = subprocess.run([NBRELAY, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip() == f"nbrelay, version {__version__}"


def test_help_lists_commands():
    result = subprocess.run([NBRELAY, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "config" in result.stdout


def test_unknown_command_is_one_line_and_exit_2():
    result = subprocess.run([NBRELAY, "frobnicate"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr == "nbrelay: error: No such command 'frobnicate'.\n"
