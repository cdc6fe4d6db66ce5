import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_config import VALID

NBRELAY = str(Path(sys.executable).with_name("nbrelay"))


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [NBRELAY, *args], env={"PATH": "/usr/bin:/bin", **env}, cwd=cwd,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize("command", [["web"], ["worker"], ["scheduler"]])
def test_processes_check_their_configuration_first(command, tmp_path):
    missing = {k: v for k, v in VALID.items() if k != "NBRELAY_SECRET"}
    result = run(*command, env=missing, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "nbrelay: error: NBRELAY_SECRET: is required but not set\n"
    bad = run(*command, env={**VALID, "NBRELAY_POLL_INTERVAL": "never"}, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert "NBRELAY_POLL_INTERVAL" in bad.stderr


def test_bad_usage_is_one_line_and_exit_2(tmp_path):
    for args, fragment in (
        (["worker", "--queue", "nope"], "unknown queue 'nope'"),
        (["show", "not-an-id"], "EXECUTION must be an execution id"),
        (["executions", "--status", "done"], "'done' is not one of"),
        (["run", "report", "--context", "[1]"], "must be a JSON object"),
        (["run", "report", "--relative-to", "soon"], "ISO 8601"),
    ):
        result = run(*args, env=VALID, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.startswith("nbrelay: error: ") and result.stderr.count("\n") == 1
        assert fragment in result.stderr, result.stderr


def test_the_cli_leaves_metrics_setup_to_the_commands():
    """prometheus_client picks its storage when first imported: `nbrelay web` must be able to
    set PROMETHEUS_MULTIPROC_DIR before anything imports it."""
    probe = "import sys, service.cli; print('prometheus_client' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
