"""``make airflow-down`` (``deployment down``) stops the stack and leaves no secrets on disk."""

from __future__ import annotations

import json
import subprocess

from airflow_provider_kling.testing.deployment import STATE_FILE, down


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
