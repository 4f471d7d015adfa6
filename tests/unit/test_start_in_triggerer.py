"""A wait that costs no worker: the sensor starts in the triggerer, and a trigger ends its task."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.triggers.base import TaskFailedEvent, TaskSuccessEvent

from airflow_provider_kling.api import KlingValidationError, PollSchedule
from airflow_provider_kling.api.events import parse_event
from airflow_provider_kling.api.waiting import WaitState
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.tasks.ledger import STATUS_KEY, success_entry
from airflow_provider_kling.tasks.results import result_from_event
from airflow_provider_kling.tasks.start import (
    DEFER_GRACE,
    HANDOVER,
    KlingTaskTrigger,
    choose_start_from_trigger,
)
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.compat import AIRFLOW_V_3_3_PLUS, TaskDeferred
from tests.helpers import submit

only_3_3 = pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Airflow 3.3+ starts tasks in the triggerer")


def dag_with(build: Any) -> Any:
    """The task ``build`` makes, as the triggerer gets it: from the serialized DAG."""
    from airflow.serialization.serialized_objects import DagSerialization  # 3.3's name

    with DAG("start_test", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")) as dag:
        build()
    return DagSerialization.from_dict(DagSerialization.to_dict(dag))


class FakeTI:
    """The part of the triggerer's RuntimeTaskInstance the trigger reads: its map index and XCom."""

    def __init__(
        self, task: Any, map_index: int = -1, xcoms: dict[tuple[str, int | None], Any] | None = None
    ):
        self.task = task
        self.task_id = task.task_id
        self.map_index = map_index
        self.xcoms = xcoms or {}
        self.pulls: list[dict[str, Any]] = []

    def xcom_pull(
        self, task_ids: str, dag_id: str | None = None, key: str = "return_value", **kwargs: Any
    ) -> Any:
        map_indexes = kwargs.get("map_indexes")
        self.pulls.append({"task_ids": task_ids, "key": key, "map_indexes": map_indexes})
        return self.xcoms.get((task_ids, map_indexes))


def started(task: Any, ti: FakeTI, *, timeout_after: dt.datetime | None = None) -> KlingTaskTrigger:
    """The trigger as Airflow 3.3's triggerer builds it for a task it starts."""
    args = task.start_trigger_args
    from airflow.serialization.decoders import smart_decode_trigger_kwargs

    kwargs = {
        k: smart_decode_trigger_kwargs(v) for k, v in smart_decode_trigger_kwargs(args.trigger_kwargs).items()
    }
    trigger = KlingTaskTrigger(**kwargs)
    trigger.task_instance = ti  # type: ignore[assignment]
    trigger.timeout_after = timeout_after  # type: ignore[attr-defined]
    trigger.trigger_id = 7
    trigger.render_template_fields(context={"ti": ti, "task_instance": ti, "run_id": "r"})  # type: ignore[arg-type]
    return trigger


# --- the choice, at parse time ----------------------------------------------------------------


@only_3_3
def test_a_deferrable_sensor_starts_in_the_triggerer_and_poke_or_reschedule_do_not():
    assert choose_start_from_trigger(None, deferrable=True, reschedule=False) is True
    assert choose_start_from_trigger(None, deferrable=False, reschedule=False) is False
    assert choose_start_from_trigger(None, deferrable=True, reschedule=True) is False
    assert choose_start_from_trigger(False, deferrable=True, reschedule=False) is False


@only_3_3
@pytest.mark.parametrize(
    ("chosen", "deferrable", "problem"), [(True, False, "not deferrable"), ("yes", True, "boolean")]
)
def test_an_impossible_choice_is_refused_naming_the_field(chosen, deferrable, problem):
    with pytest.raises(KlingValidationError, match=rf"start_from_trigger.*{problem}.*Allowed"):
        KlingStatusSensor(task_id="w", request_id="r1", deferrable=deferrable, start_from_trigger=chosen)


@only_3_3
def test_the_sensor_carries_its_wait_to_the_scheduler_and_a_download_keeps_the_worker():
    sensor = KlingStatusSensor(task_id="w", request_id="r1", deferrable=True, timeout=600, poke_interval=7)
    assert sensor.start_from_trigger is True
    args = sensor.start_trigger_args
    assert args is not None
    assert args.trigger_cls == "airflow_provider_kling.tasks.start.KlingTaskTrigger"
    assert args.next_method == "resume_from_trigger"
    assert args.timeout == dt.timedelta(seconds=600 + DEFER_GRACE)
    assert args.trigger_kwargs["start"] == {"timeout": 600.0, "poll_interval": 7.0, "max_poll_failures": 10}
    assert args.trigger_kwargs["ends_task"] is True
    # The default schedule where the user chose no interval.
    default = KlingStatusSensor(task_id="w2", request_id="r1", deferrable=True)
    assert default.start_trigger_args.trigger_kwargs["start"]["poll_interval"] is None
    # A download, or an outlet's asset event, is left to a worker.
    downloads = KlingStatusSensor(task_id="w3", request_id="r1", deferrable=True, download_to="/tmp/v")
    assert downloads.start_from_trigger is True
    assert downloads.start_trigger_args.trigger_kwargs["ends_task"] is False
    poke = KlingStatusSensor(task_id="w4", request_id="r1", deferrable=False)
    assert poke.start_from_trigger is False
    assert poke.start_trigger_args is None


@only_3_3
def test_a_mapped_sensor_chooses_in_partial_and_a_worker_can_still_unmap_it():
    def build() -> None:
        KlingStatusSensor.partial(task_id="w", deferrable=True, timeout=900, poke_interval=5).expand(
            request_id=["r1", "r2"]
        )
        KlingStatusSensor.partial(task_id="p", deferrable=True, mode="reschedule").expand(request_id=["r1"])

    dag = dag_with(build)
    mapped = dag.get_task("w")
    assert mapped.start_from_trigger is True
    assert mapped.start_trigger_args.trigger_kwargs  # encoded, read back by the triggerer
    assert dag.get_task("p").start_from_trigger is False
    # The worker path (a handover, Airflow 3.1) builds the operator from the partial arguments.
    with DAG("unmap", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC")):
        partial = KlingStatusSensor.partial(task_id="w", deferrable=True, timeout=900)
        sensor = KlingStatusSensor(
            **{**partial.kwargs, "task_id": "w1", "dag": None, "task_group": None}, request_id="r1"
        )
        partial.expand(request_id=["r1"])
    assert sensor.start_from_trigger is True
    assert sensor.timeout == 900


# --- the request id, read in the triggerer ------------------------------------------------------


@only_3_3
def test_the_rendered_request_id_and_the_deadline_from_the_schedulers_timeout():
    dag = dag_with(
        lambda: KlingStatusSensor(task_id="w", request_id="{{ run_id }}-x", deferrable=True, timeout=600)
    )
    task = dag.get_task("w")
    limit = pendulum.datetime(2026, 12, 6, 12, tz="UTC")
    trigger = started(task, FakeTI(task), timeout_after=limit)
    assert trigger.handover is None
    assert trigger.request_id == "r-x"
    assert trigger.state.deadline == limit.timestamp() - DEFER_GRACE
    assert trigger.state.submitted_at == trigger.state.deadline - 600


@only_3_3
def test_submit_output_is_read_as_one_value_which_the_triggerer_serves():
    # Airflow 3.3.2's triggerer never answers a pull of every map index (GetXComSequenceSlice),
    # which str(submit.output) would send: the pull names the map index.
    def build() -> None:
        submit_task = KlingI2VOperator(task_id="submit", first_frame="a.png", prompt="p")
        KlingStatusSensor(task_id="w", request_id=submit_task.output, deferrable=True)

    task = dag_with(build).get_task("w")
    ti = FakeTI(task, xcoms={("submit", -1): "req-9"})
    assert started(task, ti).request_id == "req-9"
    assert ti.pulls == [{"task_ids": "submit", "key": "return_value", "map_indexes": -1}]


@only_3_3
def test_a_mapped_sensor_waits_for_the_request_of_its_own_map_index():
    def build() -> None:
        submit_task = KlingI2VOperator.partial(task_id="submit", prompt="p").expand(
            first_frame=["a.png", "b.png"]
        )
        KlingStatusSensor.partial(task_id="w", deferrable=True).expand(request_id=submit_task.output)
        KlingStatusSensor.partial(task_id="listed", deferrable=True).expand(request_id=["r0", "r1", "r2"])

    dag = dag_with(build)
    task = dag.get_task("w")
    ti = FakeTI(task, map_index=1, xcoms={("submit", 1): "req-1", ("submit", 0): "req-0"})
    trigger = started(task, ti)
    assert trigger.request_id == "req-1"
    assert ti.pulls == [{"task_ids": "submit", "key": "return_value", "map_indexes": 1}]
    listed = dag.get_task("listed")
    assert started(listed, FakeTI(listed, map_index=2)).request_id == "r2"


@only_3_3
def test_shapes_only_a_worker_unmaps_are_handed_to_a_worker():
    def build() -> None:
        KlingStatusSensor.partial(task_id="kwargs", deferrable=True).expand_kwargs(
            [{"request_id": "r1", "timeout": 60}]
        )
        KlingStatusSensor.partial(task_id="timeouts", deferrable=True).expand(request_id=["r1"], timeout=[60])
        KlingStatusSensor(task_id="bad", request_id="{{ 'not an id!' }}", deferrable=True)

    dag = dag_with(build)
    for task_id, why in [("kwargs", "ListOfDicts"), ("timeouts", "timeout"), ("bad", "request_id")]:
        task = dag.get_task(task_id)
        trigger = started(task, FakeTI(task, map_index=0))
        assert why in (trigger.handover or ""), (task_id, trigger.handover)


@only_3_3
async def test_a_handover_is_one_event_and_the_sensor_runs_as_before_on_the_worker(
    kling_simulator, kling_connection_env
):
    dag = dag_with(lambda: KlingStatusSensor(task_id="bad", request_id="{{ 'not an id!' }}", deferrable=True))
    task = dag.get_task("bad")
    events = [e async for e in started(task, FakeTI(task)).run()]
    assert len(events) == 1
    assert HANDOVER in events[0].payload


# --- the end, in the triggerer ------------------------------------------------------------------


def fast_wait(request_id: str) -> WaitState:
    now = time.time()
    return WaitState(
        request_id=request_id, submitted_at=now, deadline=now + 60, schedule=PollSchedule.for_interval(0.05)
    )


class WaitingTI:
    """The task instance a triggerer gives a deferred task's trigger (the workload's)."""

    dag_id, task_id, run_id, map_index = "d", "wait", "r", -1


@pytest.fixture
def pushed(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The XComs a trigger sends through the triggerer's channel (``XCom.set``; the end-to-end
    tests send them to a real API server)."""
    from airflow.sdk.execution_time.xcom import XCom

    sent: dict[str, Any] = {}

    def record(key: str, value: Any, **where: Any) -> None:
        assert where == {"dag_id": "d", "task_id": "wait", "run_id": "r", "map_index": -1}
        sent[key] = value

    monkeypatch.setattr(XCom, "set", record)
    return sent


def waiting(request_id: str = "r1", **kwargs: Any) -> KlingTaskTrigger:
    """A deferred wait, run as a triggerer runs it (with its row's id and the task instance)."""
    trigger = KlingTaskTrigger(state=fast_wait(request_id), **kwargs)
    trigger.trigger_id = 3
    trigger.task_instance = WaitingTI()  # type: ignore[assignment]
    return trigger


@only_3_3
async def test_success_ends_the_task_with_the_xcoms_the_worker_path_pushes(
    kling_simulator, kling_connection_env, pushed
):
    request_id = submit(kling_simulator)
    events = [e async for e in waiting(request_id, result_extra={"estimated_cost_usd": 0.56}).run()]
    assert len(events) == 1
    end = events[0]
    assert isinstance(end, TaskSuccessEvent)
    # What execute_complete would have returned and pushed, from the same wait.
    plain = [e.payload async for e in KlingTaskTrigger(state=fast_wait(request_id)).run()]
    worker_result = {**result_from_event(plain[0]), "estimated_cost_usd": 0.56}
    assert pushed == {"return_value": worker_result, STATUS_KEY: success_entry(worker_result)}
    # Not as the event's own XComs, which Airflow 3.3.2 stores JSON-encoded twice.
    assert not end.xcoms


@only_3_3
async def test_a_failed_request_fails_the_task_with_gmis_message_in_its_log(
    kling_simulator, kling_connection_env, capsys, pushed
):
    request_id = submit(kling_simulator, prompt="SIMULATE_FAILURE face detected")
    events = [e async for e in waiting(request_id).run()]
    assert isinstance(events[0], TaskFailedEvent)
    assert pushed[STATUS_KEY]["status"] == "failed"
    assert "face detected" in pushed[STATUS_KEY]["error"]
    logged = [line for line in capsys.readouterr().out.splitlines() if "[error" in line]
    assert any("face detected" in line for line in logged), logged


@only_3_3
async def test_a_timeout_a_refused_push_and_a_run_outside_a_triggerer_resume_on_a_worker(pushed, monkeypatch):
    trigger = waiting()
    timeout = {"status": "timeout", "request_id": "r1", "message": "still queued"}
    assert not isinstance(await trigger.ending(timeout), TaskSuccessEvent | TaskFailedEvent)
    success = {"status": "success", "request_id": "r1", "message": "", "media_urls": ["https://x/v.mp4"]}
    assert isinstance(await trigger.ending(success), TaskSuccessEvent)
    trigger.trigger_id = None  # `airflow dags test` runs triggers inline, reading only the payload
    assert parse_event((await trigger.ending(success)).payload)["status"] == "success"
    # An API server that refuses the push: the worker ends the task, nothing is lost.
    from airflow.sdk.execution_time.xcom import XCom

    def refuse(**_: Any) -> None:
        raise PermissionError("403 Forbidden")

    monkeypatch.setattr(XCom, "set", refuse)
    refused = await waiting().ending(success)
    assert parse_event(refused.payload)["status"] == "success"


@only_3_3
def test_a_started_trigger_serializes_its_start_and_a_deferred_one_its_state():
    path, kwargs = KlingTaskTrigger(
        start={"timeout": 60.0, "poll_interval": None, "max_poll_failures": 3}
    ).serialize()
    assert path == "airflow_provider_kling.tasks.start.KlingTaskTrigger"
    assert KlingTaskTrigger(**kwargs).serialize() == (path, kwargs)
    path, kwargs = KlingTaskTrigger(state=WaitState(request_id="r1", submitted_at=1, deadline=2)).serialize()
    assert KlingTaskTrigger(**kwargs).state.request_id == "r1"
    with pytest.raises(KlingValidationError, match="state or start"):
        KlingTaskTrigger()


@pytest.mark.skipif(AIRFLOW_V_3_3_PLUS, reason="the path of Airflow 3.1 and 3.2")
def test_before_3_3_a_deferrable_sensor_checks_on_a_worker_and_defers_as_before(
    kling_simulator, kling_connection_env
):
    stuck = submit(kling_simulator, prompt="SIMULATE_STUCK")
    task = KlingStatusSensor(task_id="w", request_id=stuck, deferrable=True)
    assert task.start_from_trigger is False
    assert task.start_trigger_args is None
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})
    # The trigger that never ends a task: the task resumes on a worker, as before.
    assert type(deferred.value.trigger) is KlingStatusTrigger
    with pytest.raises(KlingValidationError, match=r"start_from_trigger.*3\.3"):
        KlingStatusSensor(task_id="w2", request_id="r1", deferrable=True, start_from_trigger=True)


@only_3_3
async def test_with_openlineage_reporting_the_worker_ends_the_task_so_its_listener_reports(
    monkeypatch, pushed
):
    import airflow_provider_kling.tasks.start as start

    trigger = waiting()
    success = {"status": "success", "request_id": "r1", "message": "", "media_urls": ["https://x/v.mp4"]}
    assert start.lineage_enabled() is False  # the provider is installed here, with no transport
    monkeypatch.setenv("AIRFLOW__OPENLINEAGE__TRANSPORT", '{"type": "console"}')
    from airflow.providers.openlineage import conf as ol_conf

    for cached in (ol_conf.transport, ol_conf.is_disabled):
        getattr(cached, "cache_clear", lambda: None)()
    try:
        assert start.lineage_enabled() is True
        assert not isinstance(await trigger.ending(success), TaskSuccessEvent)
    finally:
        monkeypatch.delenv("AIRFLOW__OPENLINEAGE__TRANSPORT")
        for cached in (ol_conf.transport, ol_conf.is_disabled):
            getattr(cached, "cache_clear", lambda: None)()


@only_3_3
async def test_the_extra_links_are_stored_as_a_worker_stores_them_when_a_try_ends(pushed, monkeypatch):
    from airflow.sdk.execution_time.xcom import XCom

    from airflow_provider_kling.links.kling import KlingRequestLink, KlingVideoLink
    from airflow_provider_kling.tasks.start import link_classpaths

    # The links read back what the trigger just pushed, one XCom at a time (all the triggerer serves).
    monkeypatch.setattr(XCom, "get_value", lambda ti_key, key: pushed.get(key))
    links = link_classpaths([KlingVideoLink(), KlingRequestLink()])
    assert links == {
        "_link_KlingVideoLink": "airflow_provider_kling.links.kling.KlingVideoLink",
        "_link_KlingRequestLink": "airflow_provider_kling.links.kling.KlingRequestLink",
    }
    trigger = waiting(links=links)
    success = {"status": "success", "request_id": "r1", "message": "", "media_urls": ["https://x/v.mp4"]}
    assert isinstance(await trigger.ending(success), TaskSuccessEvent)
    assert pushed["_link_KlingVideoLink"] == "https://x/v.mp4"
    assert "request_id=r1" in pushed["_link_KlingRequestLink"]
    assert "dag_id=d" in pushed["_link_KlingRequestLink"]
