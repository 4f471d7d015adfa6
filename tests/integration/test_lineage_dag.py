"""The OpenLineage events a real `airflow dags test` run emits, through the provider's file transport."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_kling.api import API_PREFIX
from tests.integration.conftest import ROOT

pytest.importorskip("airflow.providers.openlineage", reason="the lineage tests need the OpenLineage provider")


def completed_all(log_file: Path) -> dict[str, list[dict[str, Any]]]:
    """The tasks' COMPLETE events, by task id (the job name is ``<dag>.<task>``), one per mapped task."""
    events: dict[str, list[dict[str, Any]]] = {}
    for line in log_file.read_text().splitlines():
        event = json.loads(line) if line.strip() else {}
        if event.get("eventType") == "COMPLETE" and "." in event["job"]["name"]:
            events.setdefault(event["job"]["name"].split(".", 1)[1], []).append(event)
    return events


def completed(log_file: Path) -> dict[str, dict[str, Any]]:
    """Each task's one COMPLETE event, by task id."""
    return {task: event for task, [event] in completed_all(log_file).items()}


def transport(log_file: Path) -> dict[str, str]:
    config = {"type": "file", "log_file_path": str(log_file), "append": True}
    return {
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(config),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "kling-tests",
    }


def datasets(event: dict[str, Any], side: str) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in event[side]]


def test_the_flagship_dag_links_the_image_to_the_stored_video(airflow_cli, kling_simulator, tmp_path):
    out, log_file = tmp_path / "out", tmp_path / "lineage.jsonl"
    code, log = airflow_cli(
        "dags", "test", "kling_image_to_video", KLING_EXAMPLE_OUT=str(out), **transport(log_file)
    )
    assert code == 0, log[-5000:]
    [video] = out.glob("*.mp4")
    events = completed(log_file)
    submit, wait, download = events["submit"], events["wait"], events["download"]
    request_id = video.stem  # the example names the video {request_id}.mp4
    request = (kling_simulator.base_url, f"{API_PREFIX}/requests/{request_id}")

    assert datasets(submit, "inputs") == [("file", str(ROOT / "example_dags" / "assets" / "product.png"))]
    assert datasets(submit, "outputs") == datasets(wait, "inputs") == [request]
    [url] = datasets(wait, "outputs")
    assert url[0] == kling_simulator.base_url
    assert url[1].endswith(".mp4")
    assert datasets(download, "inputs") == [url]
    assert datasets(download, "outputs") == [("file", str(video))]

    for event in (submit, wait, download):
        facets = event["run"]["facets"]
        assert facets["externalQuery"]["externalQueryId"] == request_id
        assert facets["klingRequest"]["requestId"] == request_id
    kling = submit["run"]["facets"]["klingRequest"]
    assert kling["model"] == "kling-3.0-turbo-i2v"
    assert (kling["durationSeconds"], kling["resolution"], kling["estimatedCostUsd"]) == (5, "720p", 0.56)
    assert kling["_producer"]
    assert kling["_schemaURL"]


def test_the_batch_names_each_image_and_its_request(airflow_cli, kling_simulator, tmp_path):
    log_file, work = tmp_path / "lineage.jsonl", tmp_path / "work"
    conf = json.dumps({"count": 2})
    code, log = airflow_cli(
        "dags", "test", "kling_batch", "-c", conf, KLING_BATCH_WORKDIR=str(work), **transport(log_file)
    )
    assert code == 0, log[-5000:]
    events = completed_all(log_file)
    submits, waits = events["submit"], events["wait"]
    images = sorted(str(p) for p in work.rglob("product_*.png"))
    assert len(images) == 2
    assert sorted(name for e in submits for _, name in datasets(e, "inputs")) == images
    requests = sorted(d for e in submits for d in datasets(e, "outputs"))
    assert sorted(d for e in waits for d in datasets(e, "inputs")) == requests
    assert {ns for ns, _ in requests} == {kling_simulator.base_url}
    for event in waits:
        [(namespace, name)] = datasets(event, "outputs")
        assert namespace == kling_simulator.base_url
        assert name.endswith(".mp4")
    costs = [e["run"]["facets"]["klingRequest"]["estimatedCostUsd"] for e in submits]
    assert costs == [0.56, 0.56]
