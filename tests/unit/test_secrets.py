"""The API key and inline images never show up where people or logs can see them."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from airflow_provider_kling.api import KlingAPIError
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.compat import TaskDeferred
from tests.helpers import FakeTI

KEY = "gmi-SECRET-key-8f3a1c"


@pytest.mark.kling_simulator(api_key=KEY)
def test_key_and_image_stay_out_of_every_surface(kling_simulator, monkeypatch, capsys, png_bytes):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLING_DEFAULT",
        json.dumps({"conn_type": "kling", "host": kling_simulator.base_url, "password": KEY}),
    )
    b64 = base64.b64encode(png_bytes).decode()
    task = KlingI2VOperator(
        task_id="submit", first_frame=b64, wait_for_completion=True, deferrable=True, poll_interval=0.05
    )
    ti = FakeTI()
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({"ti": ti})
    trigger = deferred.value.trigger
    surfaces: dict[str, Any] = {
        "rendered fields": {f: getattr(task, f) for f in task.template_fields},
        "xcom": ti.pushed,
        "trigger kwargs": trigger.serialize(),
        "hook repr": repr(task.hook),
        "settings repr": repr(task.hook.settings),
        "simulator record": kling_simulator.requests[0].headers,
    }
    import asyncio

    event = asyncio.run(_first_event(trigger))
    surfaces["event"] = event
    surfaces["result"] = task.execute_complete({"ti": ti}, event=event)
    surfaces["logs"] = "".join(capsys.readouterr())
    for name, surface in surfaces.items():
        text = json.dumps(surface, default=str)
        assert KEY not in text, name
        assert b64[:64] not in text, name
    assert "PNG image" in surfaces["logs"]  # the image is described instead: size and hash


async def _first_event(trigger: KlingStatusTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


@pytest.mark.kling_simulator(api_key="the-right-key")
def test_a_wrong_key_is_not_echoed_in_the_error(kling_simulator, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KLING_DEFAULT",
        json.dumps({"conn_type": "kling", "host": kling_simulator.base_url, "password": KEY}),
    )
    with pytest.raises(KlingAPIError) as err:
        KlingHook().get_request("r1")
    assert err.value.status_code == 401
    assert KEY not in str(err.value)
    assert "Password" in str(err.value)


def test_rendering_a_template_to_base64_keeps_it_out_of_rendered_fields(png_bytes):
    from airflow.sdk import DAG

    b64 = base64.b64encode(png_bytes).decode()
    with DAG("d", schedule=None):
        task = KlingI2VOperator(task_id="submit", first_frame="{{ params.image }}", deferrable=False)
    task.render_template_fields({"params": {"image": b64}})
    assert b64 not in str(task.first_frame)
    assert task.field_value("first_frame") == b64


def test_simulator_never_keeps_the_key(kling_simulator, kling_connection_env):
    KlingHook().list_models()
    assert kling_simulator.api_key not in json.dumps(kling_simulator.state.stats(), default=str)
    assert kling_simulator.last_headers("GET /models")["authorization"] == "Bearer ***"
