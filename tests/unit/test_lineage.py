"""Lineage: what each Kling task tells OpenLineage and the hook-level collector, against the simulator."""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_kling.api import API_PREFIX
from airflow_provider_kling.hooks.lineage import FACET_NAME, dataset_of
from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.operators.submit import KlingSubmitOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from tests.helpers import FakeTI

pytest.importorskip("airflow.providers.openlineage", reason="the lineage tests need the OpenLineage provider")

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


@pytest.fixture(scope="module", autouse=True)
def memory_store() -> None:
    """fsspec's in-memory filesystem as Airflow's ``memory://`` object store: a bucket for the tests."""
    from airflow.sdk.io import attach
    from fsspec.implementations.memory import MemoryFileSystem

    attach(protocol="memory", fs=MemoryFileSystem())


@pytest.fixture
def context() -> dict[str, Any]:
    return {"ti": FakeTI(), "run_id": "manual__2026-01-01T00:00:00+00:00"}


@pytest.fixture
def image(tmp_path, png_bytes) -> Path:
    path = tmp_path / "incoming" / "red_shoe.png"
    path.parent.mkdir()
    path.write_bytes(png_bytes)
    return path


@pytest.fixture
def collector(monkeypatch):
    """A real collector in place of the no-op one Airflow gives when no lineage reader is installed."""
    try:
        module = importlib.import_module("airflow.sdk.lineage")
    except ImportError:  # Airflow < 3.2
        module = importlib.import_module("airflow.lineage.hook")
    fresh = module.HookLineageCollector()
    monkeypatch.setattr(module, "get_hook_lineage_collector", lambda: fresh)
    return fresh


def names(datasets: list[Any]) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def request_at(sim: Any, request_id: str) -> tuple[str, str]:
    return sim.base_url, f"{API_PREFIX}/requests/{request_id}"


def submit_op(**kwargs: Any) -> KlingI2VOperator:
    kwargs.setdefault("task_id", "submit")
    return KlingI2VOperator(deferrable=False, poll_interval=0.05, **kwargs)


def test_names_follow_the_openlineage_naming_spec(tmp_path):
    from airflow.sdk import ObjectStoragePath

    assert dataset_of(tmp_path / "a.png") == ("file", str(tmp_path / "a.png"))
    assert dataset_of("relative/a.png") == ("file", os.path.abspath("relative/a.png"))
    assert dataset_of("file:///data/a.png") == ("file", "/data/a.png")
    # The connection id an ObjectStoragePath (or its str) carries is not part of the name.
    assert dataset_of(ObjectStoragePath("memory://bucket/in/a.png")) == ("memory://bucket", "in/a.png")
    assert dataset_of("s3://aws_default@bucket/in/a.png") == ("s3://bucket", "in/a.png")
    assert (
        dataset_of("memory:///bucket/a.png")
        == dataset_of("memory://bucket/a.png")
        == ("memory://bucket", "a.png")
    )
    assert dataset_of("gcs://bucket/a.png") == ("gs://bucket", "a.png")
    # A signed URL's query (and any password) stays out of lineage.
    url = "https://user:secret@CDN.example.com:8443/v/a.mp4?X-Amz-Signature=abc"
    assert dataset_of(url) == ("https://cdn.example.com:8443", "/v/a.mp4")


def test_submit_without_wait_reads_the_image_and_makes_the_request(
    kling_simulator, kling_connection_env, context, image
):
    task = submit_op(first_frame=str(image), prompt="steam", resolution="1080p", duration=10)
    request_id = task.execute(context)
    lineage = task.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [("file", str(image))]
    assert names(lineage.outputs) == [request_at(kling_simulator, request_id)]
    facet = lineage.run_facets[FACET_NAME]
    assert (facet.requestId, facet.model, facet.durationSeconds, facet.resolution) == (
        request_id,
        "kling-3.0-turbo-i2v",
        10,
        "1080p",
    )
    assert facet.estimatedCostUsd == pytest.approx(1.4)  # 10 s at 1080p, $0.14 a second
    assert facet.image is None  # a located image is a dataset, not a description
    external = lineage.run_facets["externalQuery"]
    assert (external.externalQueryId, external.source) == (request_id, kling_simulator.base_url)


def test_a_stored_video_is_the_output_and_gmis_url_is_not(
    kling_simulator, kling_connection_env, context, image, tmp_path
):
    task = submit_op(first_frame=str(image), wait_for_completion=True, download_to=str(tmp_path / "out"))
    result = task.execute(context)
    lineage = task.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [("file", str(image))]
    assert names(lineage.outputs) == [("file", os.path.abspath(f["uri"])) for f in result["files"]]
    assert all(Path(name).is_file() for _, name in names(lineage.outputs))


def test_without_a_stored_copy_the_output_is_gmis_video_url(kling_simulator, kling_connection_env, context):
    task = submit_op(first_frame="https://images.example.com/shoes/red.png?sig=1", wait_for_completion=True)
    result = task.execute(context)
    lineage = task.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [("https://images.example.com", "/shoes/red.png")]
    assert names(lineage.outputs) == [dataset_of(url) for url in result["media_urls"]]
    assert lineage.outputs[0].namespace == kling_simulator.base_url


def test_an_inline_image_is_described_never_copied(kling_simulator, kling_connection_env, context, png_bytes):
    from openlineage.client.serde import Serde

    b64 = base64.b64encode(png_bytes).decode()
    task = submit_op(first_frame=b64)
    task.execute(context)
    lineage = task.get_openlineage_facets_on_complete(None)
    assert lineage.inputs == []
    facet = lineage.run_facets[FACET_NAME]
    assert facet.image.startswith("inline PNG image 320x320, ")
    serialized = Serde.to_json(facet)
    assert b64[:64] not in serialized
    assert json.loads(serialized)["image"] == facet.image


def test_the_generic_operator_reports_its_payload_image(
    kling_simulator, kling_connection_env, context, image
):
    task = KlingSubmitOperator(
        task_id="submit",
        model="kling-3.0-turbo-i2v",
        payload={"first_frame": str(image), "duration": 5, "resolution": "720p"},
    )
    request_id = task.execute(context)
    lineage = task.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [("file", str(image))]
    assert names(lineage.outputs) == [request_at(kling_simulator, request_id)]


@pytest.mark.parametrize("where", ["local folder", "bucket"])
def test_the_drop_folder_chain_links_each_image_to_its_video(
    kling_simulator, kling_connection_env, context, image, png_bytes, tmp_path, where
):
    """submit -> wait -> download, as kling_drop_folder runs them: the datasets chain image to video."""
    from airflow.sdk import ObjectStoragePath

    from airflow_provider_kling.triggers.storage import announced_image

    if where == "bucket":
        dropped = ObjectStoragePath("memory://drop/incoming/red_shoe.png")
        dropped.parent.mkdir(parents=True, exist_ok=True)
        dropped.write_bytes(png_bytes)
        first_frame, expected_image, out = (
            dropped,
            ("memory://drop", "incoming/red_shoe.png"),
            "memory://drop/out",
        )
    else:
        uri = image.as_uri()
        first_frame = announced_image({"uri": uri, "name": image.name, "folder": image.parent.as_uri()})
        expected_image, out = ("file", str(image)), str(tmp_path / "out")
    submit = submit_op(first_frame=first_frame)
    request_id = submit.execute(context)
    wait = KlingStatusSensor(task_id="wait", request_id=request_id, deferrable=False, poke_interval=0.05)
    waited = wait.execute(context)
    download = KlingDownloadVideoOperator(
        task_id="download", request_id=waited, download_to=out, download_filename="red_shoe_{request_id}.mp4"
    )
    written = download.execute(context)

    submitted, polled, copied = (t.get_openlineage_facets_on_complete(None) for t in (submit, wait, download))
    assert names(submitted.inputs) == [expected_image]
    assert names(polled.inputs) == names(submitted.outputs) == [request_at(kling_simulator, request_id)]
    assert names(copied.inputs) == names(polled.outputs) == [dataset_of(u) for u in waited["media_urls"]]
    assert names(copied.outputs) == [dataset_of(u) for u in written["uris"]]
    assert names(copied.outputs)[0][1].endswith(f"red_shoe_{request_id}.mp4")
    for lineage in (submitted, polled, copied):
        assert lineage.run_facets[FACET_NAME].requestId == request_id


def test_the_hook_collector_gets_the_local_image_read_and_each_video_written(
    kling_simulator, kling_connection_env, context, image, tmp_path, collector
):
    task = submit_op(first_frame=str(image), wait_for_completion=True, download_to=str(tmp_path / "out"))
    result = task.execute(context)
    collected = collector.collected_assets
    assert [i.asset.uri for i in collected.inputs] == [image.as_uri()]
    written = [Path(f["uri"]).resolve().as_uri() for f in result["files"]]
    assert [o.asset.uri for o in collected.outputs] == written
    assert all(o.context is task.hook for o in collected.outputs)


def test_a_video_written_to_object_storage_is_collected_under_its_final_name(
    kling_simulator, kling_connection_env, context, collector
):
    """ObjectStoragePath reports what it writes itself: the part file must not appear as a video."""
    task = submit_op(
        first_frame="https://images.example.com/a.png",
        wait_for_completion=True,
        download_to="memory://videos/out",
        download_filename="{request_id}.mp4",
    )
    result = task.execute(context)
    uris = [o.asset.uri for o in collector.collected_assets.outputs]
    assert uris == [f"memory://videos/out/{result['request_id']}.mp4"]
    assert collector.collected_assets.inputs == []  # GMI reads a URL, not the task


def test_parsing_the_example_dags_imports_nothing_of_openlineage(tmp_path):
    """
    A fresh interpreter parses every example DAG and imports the hooks: no import of OpenLineage
    starts in the provider or a DAG file (Airflow's own provider discovery may list it; ours never
    loads it, so without it installed nothing changes).
    """
    code = f"""
import importlib.abc, json, sys
ours = ({str(Path(__file__).resolve().parents[2] / "airflow_provider_kling")!r}, {str(EXAMPLES)!r})
tried = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if "openlineage" in name:
            # Who imports: the first caller outside the import machinery (Airflow's provider
            # discovery, which a DAG file's import may start, lists every provider).
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(("<frozen", "<string")):
                frame = frame.f_back
            if frame is not None and frame.f_code.co_filename.startswith(ours):
                tried.append(name)
        return None
sys.meta_path.insert(0, Watch())
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.2
    from airflow.models.dagbag import DagBag
bag = DagBag({str(EXAMPLES)!r})
assert not bag.import_errors, bag.import_errors
import airflow_provider_kling.hooks.kling, airflow_provider_kling.hooks.lineage
print(json.dumps({{"dags": len(bag.dags), "tried": tried}}))
"""
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"dags": len(list(EXAMPLES.glob("*.py"))), "tried": []}  # one DAG a file
