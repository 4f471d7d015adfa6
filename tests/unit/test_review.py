"""The review loop's steps, driven as Airflow drives them: the take against the simulator, the
review's ``execute_complete`` with the events Airflow's HITL resume delivers (a reviewer's answer,
a timeout), and the approved step reading the chain's XComs."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_provider_kling.api import KlingValidationError
from airflow_provider_kling.api.review import next_prompt, options_for, validate_max_takes
from airflow_provider_kling.exceptions import AirflowSkipException
from airflow_provider_kling.operators.review import (
    HITL_MISSING,
    KlingApprovedOperator,
    KlingReviewOperator,
    KlingTakeOperator,
)
from tests.compat import AIRFLOW_V_3_3_PLUS
from tests.helpers import FakeStateStore

pytestmark = pytest.mark.skipif(HITL_MISSING is not None, reason=str(HITL_MISSING))
URL = "https://example.com/frame.png"
IDS = ["take_1", "take_2", "take_3"]


class Run:
    """One DAG run's XComs, shared by its task instances as Airflow's XCom table is."""

    def __init__(self) -> None:
        self.xcoms: dict[tuple[str, int, str], Any] = {}

    def ti(self, task_id: str, map_index: int = -1) -> RunTI:
        return RunTI(self, task_id, map_index)


class RunTI:
    def __init__(self, run: Run, task_id: str, map_index: int) -> None:
        self.run, self.task_id, self.map_index = run, task_id, map_index
        self.dag_id, self.run_id = "kling_reviewed_campaign", "manual__1"

    def xcom_push(self, key: str, value: Any) -> None:
        self.run.xcoms[(self.task_id, self.map_index, key)] = json.loads(json.dumps(value))

    def xcom_pull(
        self, task_ids: str | Iterable[str], key: str = "return_value", map_indexes: Any = None
    ) -> Any:
        if isinstance(task_ids, str):
            return self.run.xcoms.get((task_ids, map_indexes, key))
        # A list of tasks without map_indexes: every map index of each (Airflow 3.3).
        ids = list(task_ids)
        return [v for (t, _, k), v in self.run.xcoms.items() if t in ids and k == key]


def take(n: int, **kwargs: Any) -> KlingTakeOperator:
    kwargs.setdefault("poll_interval", 0.05)
    return KlingTakeOperator(
        task_id=f"take_{n}",
        take=n,
        review_task_id=f"review_{n - 1}" if n > 1 else None,
        take_task_ids=IDS,
        first_frame=URL,
        prompt="The camera circles the product",
        wait_for_completion=True,
        deferrable=False,
        **kwargs,
    )


def review(n: int, max_takes: int = 3, **kwargs: Any) -> KlingReviewOperator:
    return KlingReviewOperator(
        task_id=f"review_{n}",
        take_task_id=f"take_{n}",
        take=n,
        max_takes=max_takes,
        take_task_ids=IDS,
        **kwargs,
    )


def answer(option: str, notes: str = "", new_prompt: str = "", user: str | None = "ana") -> dict[str, Any]:
    """The event Airflow resumes a review with: a reviewer's answer, or (no user) the timeout's."""
    return {
        "chosen_options": [option],
        "params_input": {"notes": notes, "new_prompt": new_prompt},
        "responded_at": datetime(2026, 1, 1, tzinfo=timezone.utc),
        "responded_by_user": {"id": user, "name": user} if user else None,
        "timedout": user is None,
    }


def run_take(run: Run, n: int, store: FakeStateStore, **kwargs: Any) -> Any:
    ti = run.ti(f"take_{n}")
    result = take(n, **kwargs).execute({"ti": ti, "task_state_store": store})
    ti.xcom_push("return_value", result)  # as Airflow does with a task's result
    return result


def run_review(run: Run, n: int, event: dict[str, Any], **kwargs: Any) -> Any:
    op = review(n, **kwargs)
    context = {"ti": run.ti(f"review_{n}")}
    op.body = op.describe(context)  # type: ignore[arg-type]
    record = op.execute_complete(context, event)  # type: ignore[arg-type]
    context["ti"].xcom_push("return_value", record)
    return record


def approved(run: Run) -> Any:
    op = KlingApprovedOperator(
        task_id="approved",
        take_task_ids=IDS,
        review_task_ids=["review_1", "review_2", "review_3"],
        max_takes=3,
    )
    return op.execute({"ti": run.ti("approved")})  # type: ignore[arg-type]


@pytest.mark.kling_simulator(queued_seconds=0, processing_seconds=0.2)
def test_regenerate_twice_then_approve_sends_the_notes_and_pays_each_take_once(
    kling_simulator, kling_connection_env
):
    run, stores = Run(), [FakeStateStore() for _ in IDS]
    run_take(run, 1, stores[0])
    assert run_review(run, 1, answer("Regenerate", "slower camera"))["decision"] == "Regenerate"
    run_take(run, 2, stores[1])
    run_take(run, 2, stores[1])  # a retry of take 2 waits for the same request
    run_review(run, 2, answer("Regenerate", "warmer light", new_prompt="On a marble plinth"))
    run_take(run, 3, stores[2])
    run_review(run, 3, answer("Approve"))
    result = approved(run)
    prompts = [r.payload.get("prompt") for r in kling_simulator.requests]
    assert prompts == [
        "The camera circles the product",
        "The camera circles the product\nReviewer notes: slower camera",
        "On a marble plinth\nReviewer notes: warmer light",
    ]
    assert kling_simulator.count("POST /requests") == 3
    assert result["take"] == 3
    assert result["reviewer"] == "ana"
    assert result["request_id"] == kling_simulator.requests[2].request_id
    assert [h["notes"] for h in result["notes_history"]] == ["slower camera", "warmer light", None]


@pytest.mark.kling_simulator(queued_seconds=0, processing_seconds=0.2)
def test_a_retry_of_each_step_pays_nothing_again_and_ends_the_same(kling_simulator, kling_connection_env):
    run, store = Run(), FakeStateStore()
    # Take 1 under a cap it fits only once: a retry's own price, recorded again, counts once.
    first = run_take(run, 1, store, max_total_usd=0.6)
    assert run_take(run, 1, store, max_total_usd=0.6)["request_id"] == first["request_id"]
    assert run_review(run, 1, answer("Approve")) == run_review(run, 1, answer("Approve"))
    assert approved(run) == approved(run)
    assert approved(run)["request_id"] == first["request_id"]
    assert kling_simulator.count("POST /requests") == 1


@pytest.mark.kling_simulator(queued_seconds=0, processing_seconds=0.2)
def test_the_review_shows_the_take_its_prompt_image_and_cost_so_far(kling_simulator, kling_connection_env):
    run = Run()
    run_take(run, 1, FakeStateStore())
    op = review(1, image=URL)
    body = op.describe({"ti": run.ti("review_1")})  # type: ignore[arg-type]
    request_id = kling_simulator.requests[0].request_id
    assert "**Take 1 of 3** · cost so far **$0.560**" in body
    assert f"/kling/?dag_id=kling_reviewed_campaign&run_id=manual__1&request_id={request_id}" in body
    assert "The camera circles the product" in body
    assert f"![Image]({URL})" in body


def test_a_take_after_approve_or_reject_is_not_submitted(kling_simulator, kling_connection_env):
    for decision in ("Approve", "Reject"):
        run = Run()
        run.ti("review_1").xcom_push("return_value", {"take": 1, "decision": decision})
        with pytest.raises(AirflowSkipException, match=f"take 1 was {decision}"):
            run_take(run, 2, FakeStateStore())
    assert kling_simulator.count("POST /requests") == 0


@pytest.mark.kling_simulator(queued_seconds=0, processing_seconds=0.2)
def test_the_budget_refuses_a_take_that_would_go_over_and_says_so(kling_simulator, kling_connection_env):
    run = Run()
    run_take(run, 1, FakeStateStore(), max_total_usd=1.0)
    run_review(run, 1, answer("Regenerate", "again"))
    with pytest.raises(AirflowSkipException, match=r"Take 2 not submitted: .* \$1.120, over its budget"):
        run_take(run, 2, FakeStateStore(), max_total_usd=1.0)
    assert kling_simulator.count("POST /requests") == 1
    with pytest.raises(AirflowSkipException, match="Take 2 not submitted"):
        approved(run)


def test_a_timed_out_review_rejects_by_default_and_records_it(kling_simulator):
    run = Run()
    record = run_review(run, 1, answer("Reject", user=None))
    assert record["timed_out"] is True
    assert record["reviewer"] is None
    with pytest.raises(AirflowSkipException, match="not reviewed in time: the review's timeout chose Reject"):
        approved(run)


def test_a_review_without_a_timeout_choice_fails_when_nobody_answers_and_is_not_asked_again():
    from airflow_provider_kling.exceptions import AirflowFailException

    op = review(1, on_timeout=None)
    assert op.defaults is None
    # A failure, not a retry: a retry would ask the reviewer again with a new time limit.
    with pytest.raises(AirflowFailException, match="Take 1 was not reviewed in time"):
        op.execute_complete({"ti": Run().ti("review_1")}, {"error": "no answer", "error_type": "timeout"})  # type: ignore[arg-type]


def test_the_last_take_cannot_be_regenerated_and_its_reject_says_max_takes(kling_simulator):
    assert review(3).options == ["Approve", "Reject"]
    assert options_for(2, 3) == ["Approve", "Regenerate", "Reject"]
    run = Run()
    for n in (1, 2):
        run.ti(f"review_{n}").xcom_push("return_value", {"take": n, "decision": "Regenerate"})
    run_review(run, 3, answer("Reject", "still warped"))
    with pytest.raises(AirflowSkipException, match=r"at take 3 of 3 \(max_takes reached\): still warped"):
        approved(run)


@pytest.mark.parametrize("value", [0, 11, "3", True, 2.5])
def test_max_takes_outside_its_range_is_refused_naming_it(value):
    with pytest.raises(KlingValidationError, match=r"Invalid max_takes: .* Allowed: an int from 1 to 10"):
        validate_max_takes(value)


def test_notes_too_long_for_the_prompt_are_refused_before_anything_is_paid():
    with pytest.raises(KlingValidationError, match=r"Invalid notes: .* Allowed: at most 2500"):
        next_prompt("a prompt", "x" * 2500, None)
    assert next_prompt("a prompt", "", None) == ("a prompt", "a prompt")


def test_a_reviewer_may_leave_notes_and_new_prompt_empty():
    # Airflow's Required Actions form disables every button while a field whose type refuses null
    # is empty, so a reviewer could not approve without typing notes.
    params = review(1).params
    for field in ("notes", "new_prompt"):
        assert params.get_param(field).resolve(None, suppress_exception=False) is None
        assert params.get_param(field).resolve("slower camera", suppress_exception=False) == "slower camera"


class Comms:
    """The task's channel to its supervisor: records what the review sends (the HITL request)."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, msg: Any) -> Any:
        self.sent.append(msg)
        return None

    @property
    def asked(self) -> int:
        return sum(type(m).__name__ == "CreateHITLDetailPayload" for m in self.sent)


def retry_context(run: Run, store: FakeStateStore, try_number: int) -> dict[str, Any]:
    import uuid

    ti = run.ti("review_1")
    ti.try_number, ti.id = try_number, uuid.uuid4()  # type: ignore[attr-defined]
    return {"ti": ti, "task_instance": ti, "task_state_store": store}


@pytest.mark.skipif(not AIRFLOW_V_3_3_PLUS, reason="Airflow 3.3 parks a review in awaiting_input")
@pytest.mark.kling_simulator(queued_seconds=0, processing_seconds=0.2)
def test_a_retry_of_a_review_that_asked_waits_on_its_record_and_a_cleared_one_asks_again(
    kling_simulator, kling_connection_env, monkeypatch
):
    """Airflow 3.3.2's scheduler fails a review answered within seconds of parking: its retry
    must not write the request again (Airflow would clear the answer) but wait on it."""
    from airflow.sdk.exceptions import TaskAwaitingInput, TaskDeferred
    from airflow.sdk.execution_time import task_runner

    from airflow_provider_kling.operators.review_wait import SettledHITLTrigger

    comms = Comms()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", comms, raising=False)
    run, store = Run(), FakeStateStore()
    run_take(run, 1, FakeStateStore())
    op = review(1)
    assert op.retries == 1
    with pytest.raises(TaskAwaitingInput):  # the first try asks
        op.execute(retry_context(run, store, 1))  # type: ignore[arg-type]
    assert comms.asked == 1

    context = retry_context(run, store, 2)  # the scheduler failed it: the retry
    with pytest.raises(TaskDeferred) as deferred:
        review(1).execute(context)  # type: ignore[arg-type]
    trigger = deferred.value.trigger
    assert isinstance(trigger, SettledHITLTrigger)
    assert trigger.ti_id == context["task_instance"].id
    assert trigger.options == ["Approve", "Regenerate", "Reject"]
    assert comms.asked == 1  # not asked again: the answer given stays
    # The triggerer builds the trigger from what it serialized, settle time included.
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_kling.operators.review_wait.SettledHITLTrigger"
    assert kwargs["settle_seconds"] == trigger.settle_seconds > 0

    # The retry's trigger found the answer: the review finishes with it.
    assert review(1).execute_complete(context, answer("Approve"))["reviewer"] == "ana"  # type: ignore[arg-type]
    with pytest.raises(TaskAwaitingInput):  # cleared on purpose after it finished: asks again
        review(1).execute(retry_context(run, store, 3))  # type: ignore[arg-type]
    assert comms.asked == 2
