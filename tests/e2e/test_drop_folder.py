"""Videos from a drop folder in the real deployment: images copied in, videos out, once each.

The example DAG ``kling_drop_folder`` is scheduled on an asset watched by ``NewImagesTrigger``
in the triggerer (``KLING_DROP_FOLDER`` is ``<home>/incoming``, polled every 2 s). Nothing
triggers a run but the files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_kling.testing.readiness import wait_until
from devtools.deployment import AirflowStack
from tests.helpers import make_png

from .conftest import AirflowAPI

pytestmark = [pytest.mark.topology("local"), pytest.mark.timeout(900)]

DAG_ID = "kling_drop_folder"
VIDEOS_URI = "kling://videos/drop"


def drop(folder: Path, name: str, width: int) -> None:
    """Copy an image in the plain way (no temporary name): the watch must wait for it to be whole."""
    (folder / name).write_bytes(make_png(width, 300))


def videos(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*.mp4"))


def runs(api: AirflowAPI) -> list[dict[str, Any]]:
    return list(api.get(f"/api/v2/dags/{DAG_ID}/dagRuns", limit=100)["dag_runs"])


def video_events(api: AirflowAPI) -> list[dict[str, Any]]:
    assets = api.get("/api/v2/assets", uri_pattern="videos/drop", limit=100)["assets"]
    ids = [a["id"] for a in assets if a["uri"] == VIDEOS_URI]
    if not ids:
        return []
    return list(api.get("/api/v2/assets/events", asset_id=ids[0], limit=100)["asset_events"])


def wait_for_all(api: AirflowAPI, out: Path, count: int) -> None:
    """``count`` videos written and every run of the DAG finished."""

    def done() -> bool:
        states = [r["state"] for r in runs(api)]
        failed = [r for r in runs(api) if r["state"] == "failed"]
        assert not failed, failed
        return len(videos(out)) >= count and all(s == "success" for s in states)

    wait_until(done, 420, f"{count} videos from {DAG_ID}", interval=2)


def test_images_dropped_in_a_folder_become_videos_once_each_across_a_killed_triggerer(
    api: AirflowAPI, stack: AirflowStack, simulator
):
    incoming = Path(stack.home) / "incoming"
    incoming.mkdir(exist_ok=True)
    out = Path(stack.home) / "out" / "drop"
    triggerer_log = stack.log_dir / "triggerer.log"
    posts_before = simulator.count("POST /requests")

    wait_until(
        lambda: api.client.get(f"/api/v2/dags/{DAG_ID}").status_code == 200, 300, f"{DAG_ID} to be parsed"
    )
    assert api.client.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": False}).status_code == 200
    try:
        # The watch starts once the unpaused DAG is parsed again; it takes the empty folder as its start.
        marker = f"existing files in file://{incoming} are the starting point"
        wait_until(
            lambda: marker in triggerer_log.read_text(errors="replace"), 300, "the folder watch to start"
        )

        for i, name in enumerate(("mug.png", "lamp.png", "chair.png")):
            drop(incoming, name, 300 + i)
        (incoming / "notes.png").write_text("not an image: refused, never paid for")
        wait_for_all(api, out, 3)
        assert simulator.count("POST /requests") - posts_before == 3
        assert sorted(p.stem.rsplit("_", 1)[0] for p in videos(out)) == ["chair", "lamp", "mug"]
        assert "Refused" in triggerer_log.read_text(errors="replace")

        stack.restart_component("triggerer")  # SIGKILL: the watch's process dies mid-poll
        drop(incoming, "vase.png", 310)
        drop(incoming, "clock.png", 311)
        wait_for_all(api, out, 5)
        time.sleep(10)  # several polls of the new triggerer: nothing may be announced again
        wait_for_all(api, out, 5)
    finally:
        api.client.patch(f"/api/v2/dags/{DAG_ID}", json={"is_paused": True})

    stems = sorted(p.stem.rsplit("_", 1)[0] for p in videos(out))
    assert stems == ["chair", "clock", "lamp", "mug", "vase"]  # one video per image, none repeated
    assert simulator.count("POST /requests") - posts_before == 5
    assert all(p.read_bytes()[4:8] == b"ftyp" for p in videos(out))

    # Each video's asset event links it to its image.
    links = {Path(e["extra"]["image"]).name: e["extra"] for e in video_events(api)}
    assert sorted(links) == ["chair.png", "clock.png", "lamp.png", "mug.png", "vase.png"]
    for image, extra in links.items():
        [video] = extra["videos"]
        assert Path(video).name.startswith(Path(image).stem + "_" + extra["request_id"])
