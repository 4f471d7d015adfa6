"""One pass per submit: every input checked once, one price read by every step that shows it."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from airflow.sdk import Asset
from airflow.sdk.exceptions import TaskDeferred
from airflow.sdk.execution_time.context import OutletEventAccessors
from sqlalchemy.orm import Session

from airflow_provider_kling.api import I2V_MODEL, MODEL_SPECS, ModelSpec, images, validation
from airflow_provider_kling.exceptions import KlingCostLimitExceeded
from airflow_provider_kling.hooks.model_check import forget_checks
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.operators.submit import KlingSubmitOperator
from airflow_provider_kling.plugins import queries
from devtools.seed import FakeRequest, insert

ASSET = Asset("kling://videos/one-pass")
# What the issue found: a 5.0-second payload passed the cap at $0.56 but was recorded at no price.
PAYLOAD = {"first_frame": "https://example.com/frame.png", "prompt": "steam rises", "duration": 5.0}


class ResumingTI:
    """A task instance whose XComs survive a deferral, as Airflow keeps them for the resumed try."""

    map_index = -1

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int) -> Any:
        assert (task_ids, map_indexes) == (self.task_id, self.map_index)
        return self.pushed.get(key)


def submit(**kwargs: Any) -> KlingSubmitOperator:
    return KlingSubmitOperator(
        task_id="submit",
        model=I2V_MODEL,
        payload=dict(PAYLOAD),
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.05,
        outlets=[ASSET],
        **kwargs,
    )


async def first_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def test_a_five_point_zero_second_request_is_priced_the_same_everywhere(
    kling_simulator, kling_connection_env, metadata_engine
):
    with pytest.raises(KlingCostLimitExceeded, match=r"estimated cost \$0\.560"):
        submit(max_cost_usd=0.55).execute({"ti": ResumingTI("submit")})
    assert kling_simulator.count("POST /requests") == 0

    ti = ResumingTI("submit")
    with pytest.raises(TaskDeferred) as deferred:
        submit(max_cost_usd=0.56).execute({"ti": ti})
    event = asyncio.run(first_event(deferred.value.trigger))
    # Resumed as Airflow resumes it: a new operator object, the same task instance's XComs.
    context = {"ti": ti, "run_id": "manual__1", "outlet_events": OutletEventAccessors()}
    result = submit(max_cost_usd=0.56).execute_complete(context, event=event)
    extra = context["outlet_events"][ASSET].extra

    price = pytest.approx(0.56)
    assert kling_simulator.requests[0].payload["duration"] == "5"
    assert ti.pushed["estimated_cost_usd"] == price
    assert ti.pushed["kling_request"]["estimated_cost_usd"] == price
    assert ti.pushed["kling_request"]["duration"] == "5"
    assert result["estimated_cost_usd"] == price
    assert extra["estimated_cost_usd"] == price
    assert extra["cost_usd"] == price  # the deprecated name DAGs of the previous version read
    assert extra["duration"] == "5"

    class Recorded(FakeRequest):
        def request(self) -> dict[str, Any]:
            return dict(ti.pushed["kling_request"])

        def outcome(self) -> dict[str, Any] | None:
            return dict(ti.pushed["kling_status"])

    # Beside it, a record pushed by the previous version, as its JSON was stored.
    previous = {
        "request_id": "from-the-previous-version",
        "model": I2V_MODEL,
        "prompt": "old",
        "duration": "10",
        "resolution": "720p",
        "estimated_cost_usd": 1.12,
        "submitted_at": 1764500000.0,
        "image": None,
    }

    class Previous(FakeRequest):
        def request(self) -> dict[str, Any]:
            return previous

    request_id = ti.pushed["request_id"]
    with Session(metadata_engine) as session:
        insert(
            session,
            [
                Recorded("pass", "manual__1", request_id=request_id),
                Previous("pass", "manual__0", request_id=previous["request_id"]),
            ],
        )
        shown = {v.request_id: v.to_json() for v in queries.page(session, queries.Filters({"pass"})).videos}
        totals = queries.totals(session, queries.Filters({"pass"}))
    assert shown[request_id]["estimated_cost_usd"] == price
    assert shown[previous["request_id"]]["estimated_cost_usd"] == pytest.approx(1.12)
    assert totals["spend_usd"] == pytest.approx(0.56 + 1.12)


def spy_everywhere(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    """Count calls of a function, under every name the provider's modules imported it by."""
    real: Callable[..., Any] = getattr(module, name)
    calls: list[Any] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0] if args else None)
        return real(*args, **kwargs)

    for loaded in list(sys.modules.values()):
        ours = (loaded.__name__ or "").startswith("airflow_provider_kling")
        if ours and getattr(loaded, name, None) is real:
            monkeypatch.setattr(loaded, name, spy)
    return calls


def spy_spec(monkeypatch: pytest.MonkeyPatch, model: str) -> dict[str, int]:
    """Count each of a model spec's per-field checks."""
    counts: dict[str, int] = {}
    spec: ModelSpec = MODEL_SPECS[model]

    def counted(name: str, check: Callable[..., Any]) -> Callable[..., Any]:
        def run(value: Any, field: str) -> Any:
            counts[name] = counts.get(name, 0) + 1
            return check(value, field)

        return run

    fields = {name: counted(name, check) for name, check in spec.fields.items()}
    monkeypatch.setitem(MODEL_SPECS, model, replace(spec, fields=fields))
    return counts


@pytest.mark.parametrize("operator", ["KlingI2VOperator", "KlingSubmitOperator"])
@pytest.mark.parametrize("deferrable", [False, True])
def test_one_execute_reads_the_image_once_and_checks_each_field_once(
    kling_simulator, kling_connection_env, monkeypatch, tmp_path, png_bytes, operator, deferrable
):
    image = tmp_path / "red_shoe.png"
    image.write_bytes(png_bytes)
    arguments = {"first_frame": str(image), "prompt": "steam rises", "resolution": "720p", "duration": 5}
    if operator == "KlingI2VOperator":
        task: KlingSubmitOperator = KlingI2VOperator(task_id="submit", **arguments)
    else:
        task = KlingSubmitOperator(task_id="submit", model=I2V_MODEL, payload=arguments)
    task.wait_for_completion, task.deferrable, task.poll_interval = True, deferrable, 0.05
    task.download_to, task.download_filename = str(tmp_path / "out"), "{image}.mp4"
    forget_checks()  # the model-detail check runs once per process: count it in every case
    # Counted from here: what the task does when it runs, not while the DAG is parsed.
    classified = spy_everywhere(monkeypatch, images, "classify_first_frame")
    prompts = spy_everywhere(monkeypatch, validation, "validate_prompt")
    models = spy_everywhere(monkeypatch, validation, "validate_model")
    checks = spy_spec(monkeypatch, I2V_MODEL) if operator == "KlingSubmitOperator" else None
    read: list[Any] = []
    real_read = type(image).read_bytes
    monkeypatch.setattr(type(image), "read_bytes", lambda self: read.append(self) or real_read(self))

    ti = ResumingTI("submit")
    context = {"ti": ti, "run_id": "manual__1"}
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(context)
        event = asyncio.run(first_event(deferred.value.trigger))
        result = task.execute_complete(context, event=event)
    else:
        result = task.execute(context)

    assert [p for p in read if p == image] == [image]
    assert classified == [str(image)]
    assert prompts == ["steam rises"]
    # The pass checks the model once; KlingHook.submit checks it again for its own callers, and
    # so does the model-detail check (once per process) before it puts the id in a URL.
    assert models == [I2V_MODEL, I2V_MODEL, I2V_MODEL]
    if checks is not None:
        assert checks == {"first_frame": 1, "prompt": 1, "resolution": 1, "duration": 1}
    # The one read also named the video after its image.
    assert [f["uri"].rsplit("/", 1)[-1] for f in result["files"]] == ["red_shoe.mp4"]
