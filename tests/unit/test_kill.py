"""
Killing a task or its trigger: the request keeps running (and billing) unless the user asked
for a cancel, and a trigger handed to another triggerer never cancels.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from airflow_provider_kling.testing import Fault
from airflow_provider_kling.triggers.kling import KlingStatusTrigger
from tests.helpers import operator, submit
from tests.helpers import task_context as a_try


def test_on_kill_says_the_request_keeps_billing(kling_simulator, kling_connection_env, capsys):
    task = operator()
    request_id = task.execute(a_try())
    task.on_kill()
    assert f"Kling request {request_id} keeps running at GMI and is billed" in "".join(capsys.readouterr())
    assert kling_simulator.count("DELETE /requests/{id}") == 0


def test_cancel_on_kill_cancels_the_request(kling_simulator, kling_connection_env):
    task = operator(cancel_on_kill=True)
    request_id = task.execute(a_try())
    task.on_kill()
    assert kling_simulator.record(request_id)["status"] == "cancelled"


def test_a_cancel_gmi_refuses_is_a_warning_in_the_log_and_the_request_runs_on(
    kling_simulator, kling_connection_env, retry_sleeps, caplog, capsys
):
    task = operator(cancel_on_kill=True)
    request_id = task.execute(a_try())
    kling_simulator.script("DELETE /requests/{id}", [Fault.error(405, "method not allowed")])
    task.on_kill()  # a task being killed must not fail on its cleanup
    log = caplog.text + "".join(capsys.readouterr())
    assert f"Could not cancel Kling request {request_id} (GMI documents no cancel call)" in log
    assert "method not allowed" in log
    assert kling_simulator.count("DELETE /requests/{id}") == 1
    assert kling_simulator.record(request_id)["status"] != "cancelled"


async def test_trigger_on_kill_cancels_when_asked(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    await KlingStatusTrigger(request_id=request_id, end_time=time.time() + 60, cancel_on_kill=True).on_kill()
    assert kling_simulator.record(request_id)["status"] == "cancelled"


async def test_trigger_on_kill_only_warns_by_default(kling_simulator, kling_connection_env):
    request_id = submit(kling_simulator)
    await KlingStatusTrigger(request_id=request_id, end_time=time.time() + 60).on_kill()
    assert kling_simulator.record(request_id)["status"] != "cancelled"


def _rerun_in_triggerer(
    monkeypatch: pytest.MonkeyPatch, request_id: str, answer: Any
) -> tuple[KlingStatusTrigger, list[dict[str, Any]]]:
    """The trigger as a triggerer runs it: with its task instance, whose state it can ask for."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    asked: list[dict[str, Any]] = []

    def get_task_states(**query: Any) -> dict[str, Any]:
        asked.append(query)
        if isinstance(answer, Exception):
            raise answer
        return {"run_1": {"render_3": answer}}

    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(get_task_states))
    trigger = KlingStatusTrigger(request_id=request_id, end_time=time.time() + 60, cancel_on_kill=True)
    trigger.task_instance = SimpleNamespace(dag_id="d", task_id="render", run_id="run_1", map_index=3)
    return trigger, asked


async def test_a_reassigned_trigger_never_cancels_the_request(
    kling_simulator, kling_connection_env, monkeypatch, caplog, capsys
):
    # Airflow 3.3.2 calls on_kill on the old triggerer when a lapsed heartbeat hands its
    # triggers to another one (apache/airflow#73454); the task instance is still deferred.
    request_id = submit(kling_simulator)
    trigger, asked = _rerun_in_triggerer(monkeypatch, request_id, "deferred")
    await trigger.on_kill()
    assert kling_simulator.count("DELETE /requests/{id}") == 0
    assert kling_simulator.record(request_id)["status"] != "cancelled"
    assert asked == [{"dag_id": "d", "task_ids": ["render"], "run_ids": ["run_1"], "map_index": 3}]
    assert "another triggerer waits for it" in caplog.text + "".join(capsys.readouterr())


@pytest.mark.parametrize("state", ["failed", "success", None, "up_for_retry"])
async def test_a_user_kill_cancels_once_the_task_left_the_deferred_state(
    kling_simulator, kling_connection_env, monkeypatch, state
):
    request_id = submit(kling_simulator)
    await _rerun_in_triggerer(monkeypatch, request_id, state)[0].on_kill()
    assert kling_simulator.record(request_id)["status"] == "cancelled"


async def test_an_unknown_task_state_cancels_nothing(kling_simulator, kling_connection_env, monkeypatch):
    request_id = submit(kling_simulator)
    await _rerun_in_triggerer(monkeypatch, request_id, RuntimeError("supervisor gone"))[0].on_kill()
    assert kling_simulator.count("DELETE /requests/{id}") == 0
