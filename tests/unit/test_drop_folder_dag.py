"""The drop-folder example DAG as the DAG processor sees it: an asset watched by NewImagesTrigger."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILE = ROOT / "example_dags" / "kling_drop_folder.py"


@pytest.fixture
def dagbag(monkeypatch, tmp_path):
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]

    monkeypatch.setenv("KLING_DROP_FOLDER", str(tmp_path / "incoming"))
    monkeypatch.setenv("KLING_DROP_POLL_SECONDS", "3")
    return DagBag(str(DAG_FILE))


def test_the_example_is_scheduled_on_a_watched_folder_and_maps_over_its_images(dagbag, tmp_path):
    assert dagbag.import_errors == {}
    dag = dagbag.dags["kling_drop_folder"]
    assert [t.task_id for t in dag.tasks] == ["new_images", "submit", "wait", "download", "link"]
    asset = runpy.run_path(str(DAG_FILE))["NEW_IMAGES"]
    assert asset.uri == f"file://{tmp_path}/incoming"
    [watcher] = asset.watchers
    classpath, kwargs = watcher.trigger.serialize()
    assert classpath == "airflow_provider_kling.triggers.storage.NewImagesTrigger"
    assert kwargs["path"] == asset.uri
    assert kwargs["poll_interval"] == 3.0
    # The images are mapped: one submit, wait, download and link per image.
    assert all(dag.get_task(t).is_mapped for t in ("submit", "wait", "download", "link"))
    assert [o.uri for o in dag.get_task("link").outlets] == ["kling://videos/drop"]


def test_the_example_reads_a_local_image_only_from_inside_the_folder(dagbag, tmp_path):
    from airflow_provider_kling.api.images import prepare_first_frame
    from tests.helpers import make_png

    location = runpy.run_path(str(DAG_FILE))["image_location"]
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "a.png").write_bytes(make_png(300, 300))
    (tmp_path / "elsewhere.png").write_bytes(make_png(300, 300))
    (folder / "b.png").symlink_to(tmp_path / "elsewhere.png")
    image = {"uri": f"file://{folder}/a.png", "name": "a.png"}
    assert prepare_first_frame(location(image))[1].startswith("PNG image 300x300")
    with pytest.raises(ValueError, match="symbolic link"):
        prepare_first_frame(location({"uri": f"file://{folder}/b.png", "name": "b.png"}))
