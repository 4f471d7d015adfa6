"""The example DAG, run by a real `airflow dags test` process against the simulator."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, error_lines


# Slow enough that the sensor's first poke sees the request running and must defer.
@pytest.mark.kling_simulator(queued_seconds=2, processing_seconds=3)
def test_example_dag_turns_the_image_into_an_mp4(airflow_env, airflow_cli, kling_simulator, tmp_path):
    out = tmp_path / "out"
    # Debug logs are the widest surface a secret could leak through.
    code, log = airflow_cli(
        "dags",
        "test",
        "kling_image_to_video",
        KLING_EXAMPLE_OUT=str(out),
        AIRFLOW__LOGGING__LOGGING_LEVEL="DEBUG",
    )
    assert code == 0, log[-5000:]
    videos = list(out.glob("*.mp4"))
    assert len(videos) == 1, log[-5000:]
    # A successful run says nothing at error level (the extra links read no missing XCom).
    assert error_lines(log) == []
    assert f"Saved Kling video to {videos[0]}" in log
    assert videos[0].read_bytes()[4:8] == b"ftyp"
    assert kling_simulator.count("POST /requests") == 1
    # The sensor deferred: the last poll came from the trigger's async client.
    assert "python-httpx" in kling_simulator.last_headers("GET /requests/{id}")["user-agent"]
    image_b64 = base64.b64encode((ROOT / "example_dags/assets/product.png").read_bytes()).decode()
    stored = stored_values(Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db")
    # Airflow's in-process supervisor (used by `dags test`) logs its own MaskSecret
    # messages, key included, at debug level: Airflow's leak, not ours, and not in task logs.
    ours = "\n".join(line for line in log.splitlines() if "MaskSecret(" not in line)
    for surface in (ours, stored):
        assert kling_simulator.api_key not in surface
        assert image_b64[:64] not in surface


def test_a_failed_run_shows_its_error_without_link_noise(airflow_cli, tmp_path):
    not_an_image = tmp_path / "product.jpg"
    not_an_image.write_text("not an image")
    code, log = airflow_cli("dags", "test", "kling_image_to_video", KLING_EXAMPLE_IMAGE=str(not_an_image))
    assert code != 0 or "state=failed" in log, log[-5000:]
    assert "Invalid first_frame" in log
    # The real error is the only thing said at error level (Airflow 3.1 says nothing there).
    said = {line.split("]", 1)[1].split("[")[0].strip() for line in error_lines(log)}
    assert said <= {"Task failed with exception"}
    assert "XCom not found" not in log


def stored_values(db: Path) -> str:
    """Everything the run left in XCom and the rendered templated fields, as text."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT value FROM xcom").fetchall()
        rows += conn.execute("SELECT rendered_fields FROM rendered_task_instance_fields").fetchall()
    assert rows, "the run stored no XCom or rendered fields"
    return "\n".join(str(value) for (value,) in rows)
