"""The default polling schedule, and how the trigger, sensor and operators use it."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_kling.api import DEFAULT_SCHEDULE, KlingValidationError, PollSchedule
from airflow_provider_kling.api.polling import submitted_at
from airflow_provider_kling.api.waiting import begin
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.compat import TaskDeferred
from tests.helpers import FakeTI, submit

POLLS = "GET /requests/{id}"


def test_the_default_schedule_waits_then_polls_about_every_ten_seconds_then_slows_down():
    rng = random.Random(0)
    ages = list(DEFAULT_SCHEDULE.poll_ages(3600, rng=rng))
    assert 22.5 <= ages[0] <= 27.5  # 25 s ± 10%
    early = [b - a for a, b in itertools.pairwise(ages) if b < 600]
    assert all(8.5 <= gap <= 10.5 for gap in early)
    late = [b - a for a, b in itertools.pairwise(ages) if a > 2000]
    assert all(27 <= gap <= 33 for gap in late)
    # An hour stuck in the queue costs about a quarter of the 721 calls of fixed 5 s polling.
    assert 150 <= len(ages) <= 230


def test_a_fixed_interval_polls_at_once_then_every_interval():
    schedule = PollSchedule.fixed(5, jitter=0)
    assert list(schedule.poll_ages(12)) == [0, 5, 10, 15]


def test_a_wait_that_starts_late_polls_at_once():
    assert DEFAULT_SCHEDULE.wait(40.0, polled=False) == 0.0
    assert 22.5 <= DEFAULT_SCHEDULE.wait(0.0, polled=False) <= 27.5
    assert 13.5 <= DEFAULT_SCHEDULE.wait(10.0, polled=False) <= 16.5


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: PollSchedule.fixed(0), "poll_interval"),
        (lambda: PollSchedule.fixed(float("nan")), "poll_interval"),
        (lambda: PollSchedule.fixed(True), "poll_interval"),
        (lambda: PollSchedule(interval=-1), "poll schedule interval"),
        (lambda: PollSchedule(interval=20, max_interval=10), "poll schedule max_interval"),
        (lambda: PollSchedule(jitter=1.5), "poll schedule jitter"),
    ],
)
def test_bad_schedules_name_the_field(build, field):
    with pytest.raises(KlingValidationError, match=f"Invalid {field}: .* Allowed: "):
        build()


def test_submitted_at_never_lies_in_the_future():
    now = 1_000_000.0
    assert submitted_at(None, now) == now
    assert submitted_at(datetime.fromtimestamp(now - 30, timezone.utc), now) == now - 30
    assert submitted_at(datetime.fromtimestamp(now + 30, timezone.utc), now) == now


async def test_the_default_trigger_does_not_poll_before_the_first_check(
    kling_simulator, kling_connection_env
):
    request_id = submit(kling_simulator, prompt="SIMULATE_STUCK")
    trigger = KlingStatusTrigger(request_id=request_id, end_time=time.time() + 0.5)
    events = [e.payload async for e in trigger.run()]
    # The deadline came before the first check at 25 s: one look at the deadline, no polls before.
    assert [e["status"] for e in events] == ["timeout"]
    assert kling_simulator.count(POLLS) == 1


async def test_a_resumed_trigger_polls_at_once_when_the_first_check_has_passed(
    kling_simulator, kling_connection_env
):
    request_id = submit(kling_simulator)
    kling_simulator.configure(queued_seconds=0, processing_seconds=0)
    trigger = KlingStatusTrigger(
        request_id=request_id, end_time=time.time() + 30, submitted_at=time.time() - 60
    )
    started = time.monotonic()
    await asyncio.sleep(3.5)  # the simulator's request is done by now
    events = [e.payload async for e in trigger.run()]
    assert events[0]["status"] == "success"
    assert time.monotonic() - started < 6
    assert kling_simulator.count(POLLS) == 1


def test_serialize_keeps_the_schedule_and_its_origin():
    trigger = KlingStatusTrigger(request_id="r1", end_time=2000.0, submitted_at=1000.0)
    _, kwargs = trigger.serialize()
    assert kwargs["state"]["schedule"] == DEFAULT_SCHEDULE.to_dict()
    assert kwargs["state"]["submitted_at"] == 1000.0
    resumed = KlingStatusTrigger(**kwargs)
    assert resumed.schedule == DEFAULT_SCHEDULE
    assert resumed.submitted_at == 1000.0


def test_kwargs_serialized_by_an_earlier_version_still_load():
    old = {
        "request_id": "r1",
        "end_time": 2000.0,
        "kling_conn_id": "kling_default",
        "poll_interval": 10.0,
        "max_poll_failures": 10,
        "cancel_on_kill": False,
    }
    trigger = KlingStatusTrigger(**old)
    assert trigger.schedule == PollSchedule.fixed(10.0)


def deferred_trigger(task: Any, context: dict[str, Any]) -> KlingStatusTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, KlingStatusTrigger)
    return trigger


def test_the_sensor_defers_with_the_default_schedule_from_gmis_creation_time(
    kling_simulator, kling_connection_env
):
    request_id = submit(kling_simulator)
    trigger = deferred_trigger(KlingStatusSensor(task_id="wait", request_id=request_id, deferrable=True), {})
    assert trigger.schedule == DEFAULT_SCHEDULE
    created = kling_simulator.get_request(request_id).submitted_at
    assert int(created) <= trigger.submitted_at <= time.time()


def test_a_sensor_poke_interval_is_a_fixed_schedule(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    sensor = KlingStatusSensor(task_id="wait", request_id=request_id, deferrable=True, poke_interval=7)
    assert deferred_trigger(sensor, {}).schedule == PollSchedule.fixed(7.0)


def test_the_operator_defers_with_the_default_schedule(
    kling_simulator, kling_connection_env, tmp_path, png_bytes
):
    image = tmp_path / "frame.png"
    image.write_bytes(png_bytes)
    task = KlingI2VOperator(
        task_id="make", first_frame=str(image), prompt="p", wait_for_completion=True, deferrable=True
    )
    trigger = deferred_trigger(task, {"ti": FakeTI()})
    assert trigger.schedule == DEFAULT_SCHEDULE
    assert trigger.submitted_at <= time.time()


def test_an_interval_given_means_a_fixed_schedule_and_none_means_the_default():
    from airflow_provider_kling.api import DEFAULT_SCHEDULE, PollSchedule

    assert PollSchedule.for_interval(None) is DEFAULT_SCHEDULE
    assert PollSchedule.for_interval(7) == PollSchedule.fixed(7)


@pytest.mark.parametrize(
    ("age", "low", "high"), [(2.0, 23.0 * 0.9, 23.0 * 1.1), (100.0, 9.5 * 0.9, 9.5 * 1.1)]
)
def test_a_deferred_sensor_keeps_the_schedule_after_its_own_check(
    kling_simulator, kling_connection_env, age, low, high
):
    # The sensor checked a request `age` seconds old; its trigger neither polls again at once
    # nor before the first check the schedule promises (25 s after the submit).
    request_id = submit(kling_simulator)
    trigger = deferred_trigger(KlingStatusSensor(task_id="wait", request_id=request_id, deferrable=True), {})
    now = trigger.submitted_at + age
    assert low <= begin(trigger.state, now).sleep <= high
