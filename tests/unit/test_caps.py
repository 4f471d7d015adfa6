"""Numeric caps never fail open: NaN and infinities are refused when the DAG is parsed and when it runs.

Every comparison with NaN is false, so a NaN cap (``cost > cap``) let any request through, and an
infinite one is no cap at all. These tests pass each form a DAG can give (a float, a template
rendered to ``"nan"``, ``Decimal("NaN")``, ``"1e309"``) to every numeric argument.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest

from airflow_provider_kling.api import KlingValidationError, connection_settings
from airflow_provider_kling.api.budget import price_batch
from airflow_provider_kling.api.waiting import WaitState
from airflow_provider_kling.exceptions import KlingCostLimitExceeded
from airflow_provider_kling.hooks.kling import KlingHook
from airflow_provider_kling.operators.budget import KlingBudgetOperator
from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator, KlingSubmitOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from airflow_provider_kling.triggers.storage import NewImagesTrigger
from tests.helpers import FakeTI
from tests.unit.hostile import answer, raw_server

NOT_FINITE: list[Any] = [
    math.nan,
    math.inf,
    -math.inf,
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e309",
    Decimal("NaN"),
    Decimal("sNaN"),
    Decimal("Infinity"),
    10**400,
    True,
]
IMAGE = "https://example.com/a.png"


def _build(field: str, value: Any) -> Any:
    """The task (or hook, or trigger) that takes ``field``, given ``value`` for it."""
    builders: dict[str, Any] = {
        "max_cost_usd": lambda v: KlingI2VOperator(task_id="t", first_frame=IMAGE, max_cost_usd=v),
        "duration": lambda v: KlingI2VOperator(task_id="t", first_frame=IMAGE, duration=v),
        "submit max_cost_usd": lambda v: KlingSubmitOperator(task_id="t", model="m", max_cost_usd=v),
        "max_total_usd": lambda v: KlingBudgetOperator(task_id="t", requests=[], max_total_usd=v),
        "poll_interval": lambda v: KlingSubmitOperator(task_id="t", model="m", poll_interval=v),
        "timeout": lambda v: KlingSubmitOperator(task_id="t", model="m", timeout=v),
        "max_poll_failures": lambda v: KlingSubmitOperator(task_id="t", model="m", max_poll_failures=v),
        "download_max_bytes": lambda v: KlingSubmitOperator(task_id="t", model="m", download_max_bytes=v),
        "poke_interval": lambda v: KlingStatusSensor(task_id="t", request_id="r", poke_interval=v),
        "sensor timeout": lambda v: KlingStatusSensor(task_id="t", request_id="r", timeout=v),
        "download operator download_max_bytes": lambda v: KlingDownloadVideoOperator(
            task_id="t", download_to="/tmp", request_id="r", download_max_bytes=v
        ),
        "retry_limit": lambda v: KlingHook(retry_limit=v),
        "retry_max_wait": lambda v: KlingHook(retry_max_wait=v),
        "retry_max_delay": lambda v: KlingHook(retry_max_delay=v),
        "end_time": lambda v: KlingStatusTrigger(request_id="r", end_time=v),
        "submitted_at": lambda v: KlingStatusTrigger(request_id="r", end_time=1e9, submitted_at=v),
        "trigger poll_interval": lambda v: KlingStatusTrigger(request_id="r", end_time=1e9, poll_interval=v),
        "folder poll_interval": lambda v: NewImagesTrigger(path="/tmp", poll_interval=v),
        "folder settle_seconds": lambda v: NewImagesTrigger(path="/tmp", settle_seconds=v),
        "folder rescan_seconds": lambda v: NewImagesTrigger(path="/tmp", rescan_seconds=v),
    }
    return builders[field](value)


FIELDS = [
    "max_cost_usd",
    "duration",
    "submit max_cost_usd",
    "max_total_usd",
    "poll_interval",
    "timeout",
    "max_poll_failures",
    "download_max_bytes",
    "poke_interval",
    "sensor timeout",
    "download operator download_max_bytes",
    "retry_limit",
    "retry_max_wait",
    "retry_max_delay",
    "end_time",
    "submitted_at",
    "trigger poll_interval",
    "folder poll_interval",
    "folder settle_seconds",
    "folder rescan_seconds",
]


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", NOT_FINITE, ids=repr)
def test_every_numeric_argument_refuses_nan_and_infinity_when_the_dag_is_parsed(field, value):
    name = field.split()[-1]
    with pytest.raises(KlingValidationError, match=rf"^Invalid {name}: .+\. Allowed: .+") as err:
        _build(field, value)
    assert err.value.field == name


@pytest.mark.parametrize("field", FIELDS)
def test_every_numeric_argument_still_takes_an_ordinary_number(field):
    value = 1e9 if field in ("end_time", "submitted_at") else 3
    _build(field, value)


@pytest.mark.parametrize("rendered", [math.nan, math.inf, -math.inf, "nan", "inf", "1e309", "Infinity"])
def test_a_budget_cap_rendered_to_nan_or_infinity_stops_the_batch_before_any_submit(
    rendered, kling_simulator
):
    from airflow.sdk import DAG

    with DAG("d", schedule=None):
        task = KlingBudgetOperator(
            task_id="budget", requests=["a.png"] * 500, max_total_usd="{{ params.cap }}"
        )
    task.render_template_fields({"params": {"cap": rendered}})
    assert isinstance(task.max_total_usd, str)  # what Jinja gives: "nan", "inf", ...
    ti = FakeTI()
    with pytest.raises(
        KlingValidationError,
        match=r"^Invalid max_total_usd: '.+' is (not a finite number|too large)\. Allowed: a finite number",
    ):
        task.execute({"ti": ti})  # type: ignore[arg-type]
    assert "batch_cost" not in ti.pushed
    assert kling_simulator.count("POST /requests") == 0


@pytest.mark.parametrize("cap", [math.nan, math.inf, Decimal("NaN")], ids=repr)
def test_a_batch_price_is_never_within_a_cap_that_is_not_a_finite_number(cap):
    price = price_batch([{"duration": 15, "resolution": "1080p"}] * 100, "kling-3.0-turbo-i2v")
    with pytest.raises(KlingValidationError, match="Invalid max_total_usd"):
        price.over(cap)


@pytest.mark.parametrize("cap", [math.nan, "nan", math.inf, "1e309"])
def test_a_cost_cap_set_after_parsing_is_checked_again_before_the_paid_submit(
    cap, kling_simulator, kling_connection_env
):
    task = KlingI2VOperator(
        task_id="submit", first_frame=IMAGE, resolution="1080p", duration=15, max_cost_usd=1.0
    )
    task.max_cost_usd = cap  # as a subclass templating it, or code changing it, would
    with pytest.raises(KlingValidationError, match="Invalid max_cost_usd"):
        task.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert kling_simulator.count("POST /requests") == 0


def test_a_cost_cap_still_refuses_what_costs_more_and_passes_what_costs_less(
    kling_simulator, kling_connection_env
):
    dear = KlingI2VOperator(task_id="s", first_frame=IMAGE, resolution="1080p", duration=15, max_cost_usd="2")
    with pytest.raises(KlingCostLimitExceeded, match=r"\$2\.100 is over max_cost_usd=\$2\.000"):
        dear.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    cheap = KlingI2VOperator(task_id="s", first_frame=IMAGE, duration=3, max_cost_usd=Decimal("0.5"))
    assert cheap.execute({"ti": FakeTI()})  # type: ignore[arg-type]
    assert kling_simulator.count("POST /requests") == 1


@pytest.mark.parametrize("timeout", ["nan", "inf", "Infinity", "1e309", True, 0, 3601])
def test_the_connection_timeout_extra_refuses_nan_and_infinity(timeout, monkeypatch):
    with pytest.raises(KlingValidationError, match=r"^Invalid connection 'kling_default' extra 'timeout'"):
        connection_settings(conn_id="kling_default", password="k" * 20, host=None, extra={"timeout": timeout})
    # JSON has no NaN, but Python's parser reads the bare word: a connection stored so is refused.
    conn = {"conn_type": "kling", "password": "k" * 20, "extra": '{"timeout": NaN}'}
    monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(conn))
    with pytest.raises(KlingValidationError, match=r"extra 'timeout': nan is not a number \(NaN\)"):
        KlingHook().settings  # noqa: B018


@pytest.mark.parametrize("max_bytes", [math.nan, "nan", math.inf, 0])
def test_a_download_size_cap_is_checked_where_it_is_enforced_before_anything_is_fetched(
    max_bytes, tmp_path, monkeypatch
):
    with raw_server(answer("200 OK", b"\x00" * 100, {"Content-Type": "video/mp4"})) as (url, seen):
        conn = {"conn_type": "kling", "host": url, "password": "k" * 20}
        monkeypatch.setenv("AIRFLOW_CONN_KLING_DEFAULT", json.dumps(conn))
        with pytest.raises(KlingValidationError, match=r"^Invalid max_bytes: "):
            KlingHook().download(f"{url}/v.mp4", tmp_path / "v.mp4", max_bytes=max_bytes)
    assert seen == []
    assert not (tmp_path / "v.mp4").exists()


def test_a_stored_wait_with_a_nan_deadline_starts_afresh_instead_of_never_timing_out():
    fresh = WaitState(request_id="r", submitted_at=100.0, deadline=200.0)
    saved = {**fresh.to_dict(), "deadline": math.nan, "failures": 3}
    assert fresh.resumed(saved) == fresh
    assert fresh.resumed({**saved, "deadline": "inf"}) == fresh
    assert fresh.resumed({**saved, "deadline": 300.0}).deadline == 300.0
