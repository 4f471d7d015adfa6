"""``make airflow-up`` / ``make airflow-down``'s launcher (``devtools/deployment.py``) without a deployment.

The e2e suite starts real ones through the same code; these check what can be checked in seconds:
the command line as the Makefile runs it, refusals, and that ``down`` leaves no secrets on disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from devtools import deployment
from devtools.deployment import STATE_FILE, down

ROOT = Path(__file__).resolve().parents[2]


def test_cli_runs_as_the_makefile_runs_it() -> None:
    # `make airflow-up` runs it as a module from the repository's root, the only place it exists.
    command = [sys.executable, "-m", "devtools.deployment", "--help"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "up" in result.stdout
    assert "--dags-folder" in result.stdout


def test_up_refuses_a_missing_dags_folder(tmp_path: Path) -> None:
    code = deployment.main(["up", "--home", str(tmp_path / "home"), "--dags-folder", str(tmp_path / "none")])
    assert code == 2
    assert not (tmp_path / "home").exists()


def test_down_without_a_stack_is_a_no_op(tmp_path: Path, capsys) -> None:
    assert deployment.main(["down", "--home", str(tmp_path)]) == 0
    assert "No stack recorded" in capsys.readouterr().out


def test_down_stops_the_recorded_process_groups_and_removes_the_state_file(tmp_path, capsys):
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    state = {"pids": {"scheduler": proc.pid}, "password": "admin-secret", "kling_api_key": "sim-key"}
    (tmp_path / STATE_FILE).write_text(json.dumps(state))
    try:
        down(tmp_path)
        assert proc.wait(timeout=30) is not None
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (tmp_path / STATE_FILE).exists()
    assert f"Removed {tmp_path / STATE_FILE}." in capsys.readouterr().out
    down(tmp_path)  # a second down finds nothing to stop
    assert "No stack recorded" in capsys.readouterr().out
