"""The product pipeline and the DAG scheduled on its asset, run by real `airflow dags test` processes."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.integration.conftest import ROOT, error_lines


def ok(result: tuple[int, str]) -> str:
    code, log = result
    assert code == 0, log[-5000:]
    return log


@pytest.mark.kling_simulator(queued_seconds=1, processing_seconds=1)
def test_pipeline_maps_over_a_folder_writes_videos_and_emits_asset_events(
    airflow_env, airflow_cli, kling_simulator, tmp_path
):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("mug.png", "lamp.PNG", "chair.png"):
        shutil.copyfile(ROOT / "example_dags/assets/product.png", images / name)
    (images / "notes.txt").write_text("not an image: skipped")
    out = tmp_path / "out"
    env = {"KLING_PIPELINE_IMAGES": str(images), "KLING_PIPELINE_OUT": f"file://{out}"}
    # The DAG's submits run in this pool; users create it once, the same way.
    ok(airflow_cli("pools", "set", "kling", "2", "Kling submits"))

    assert error_lines(ok(airflow_cli("dags", "test", "kling_product_pipeline", **env))) == []

    videos = sorted(out.rglob("*.mp4"))
    assert len(videos) == 3
    assert all(v.read_bytes()[4:8] == b"ftyp" for v in videos)
    assert kling_simulator.count("POST /requests") == 3
    assert not [p for p in out.rglob("*.part")]
    with sqlite3.connect(Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db") as db:
        rows = db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
            ("kling://videos/product",),
        ).fetchall()
    extras = [json.loads(extra) for (extra,) in rows]
    assert len(extras) == 3
    for extra in extras:
        assert extra["model"] == "kling-3.0-turbo-i2v"
        assert extra["prompt"].startswith("A slow turntable spin")
        assert (extra["duration"], extra["resolution"]) == ("5", "720p")
        assert extra["estimated_cost_usd"] == pytest.approx(0.56)
        assert Path(extra["uris"][0].removeprefix("file://")) in videos

    log = ok(airflow_cli("dags", "test", "kling_on_new_video", **env))
    assert "Traceback" not in log
    assert error_lines(log) == []
