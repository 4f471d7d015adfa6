"""How a review waits and resumes: its time limit, and an answer not lost to Airflow 3.3.2's race.

The standard provider before 1.10 (the one Airflow 3.1 pins) reads a review's time limit from
``execution_timeout``; later ones from ``response_timeout`` (:func:`time_limit`).

A review answered within seconds of parking must not fail. On Airflow 3.3 a review parks in
``awaiting_input`` and its worker process exits; the answer route moves it to ``scheduled``,
and the scheduler queues ``execute_complete``. The executor reports the parked process's exit
later, under the same try. When that report comes after the scheduler queued the task again,
``SchedulerJobRunner.process_executor_events`` finds the task ``queued`` (or ``running``), which
its resume check does not expect (it allows ``scheduled`` only), and the executor no longer
knows the task (the report took the new workload's key out of its running set): the scheduler
fails the try ("finished with state success, but the task instance's state attribute is queued").

The answer itself survives in the task instance's human-in-the-loop record, until a try's
``execute`` writes the request again and Airflow clears it. So a review retries once by default,
and a retry of a review that asked and was not finished with an answer does not ask again: it
waits on the record it has, through :class:`SettledHITLTrigger`, which takes an answer already
given (or waits for one; the reviewer may also answer it from Required Actions as before). The
trigger first waits :data:`SETTLE_SECONDS`, so the scheduler has seen the deferring process exit
before the task resumes and the race cannot repeat. A review cleared on purpose after it finished
asks again, as Airflow's own review operators do: the task state store says it was answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

try:
    from airflow.providers.standard.triggers.hitl import HITLTrigger
except ImportError:  # Airflow before 3.1: no review at all (operators.review says so)
    from airflow.triggers.base import BaseTrigger as HITLTrigger  # type: ignore[assignment]

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import TriggerEvent

#: The retries a review gets unless the DAG says otherwise, and how soon it retries: the reviewer
#: waits for the next take meanwhile.
RETRIES = 1
RETRY_DELAY = timedelta(seconds=5)
#: The task state store key of how a review's asking stands: ``{"asked": True, "answered": bool}``.
STATE_KEY = "kling_review"
#: How long a retry's trigger waits before it looks for an answer: longer than the executor takes
#: to report a process's exit, even under load.
SETTLE_SECONDS = 10.0


def time_limit(hitl_operator: type, timeout: timedelta | None) -> dict[str, Any]:
    """The keyword argument by which ``hitl_operator`` takes a review's time limit."""
    import inspect

    takes = "response_timeout" in inspect.signature(hitl_operator.__init__).parameters  # type: ignore[misc]
    return {"response_timeout" if takes else "execution_timeout": timeout}


def asked_before(context: Context) -> bool:
    """Whether an earlier try of this review asked and no try finished with an answer."""
    store = context.get("task_state_store")
    if store is None or context["ti"].try_number <= 1:  # Airflow 3.1 and 3.2 have no store
        return False
    state = store.get(STATE_KEY)
    return isinstance(state, Mapping) and state.get("asked") is True and state.get("answered") is not True


def mark(context: Context, *, answered: bool) -> None:
    """Record that this review asked (``answered=False``) or finished with an answer."""
    store = context.get("task_state_store")
    if store is not None:
        store.set(STATE_KEY, {"asked": True, "answered": answered})


class SettledHITLTrigger(HITLTrigger):
    """Airflow's ``HITLTrigger``, which first waits ``settle_seconds`` (see the module's docstring)."""

    def __init__(self, *, settle_seconds: float = SETTLE_SECONDS, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.settle_seconds = settle_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        _, kwargs = super().serialize()
        return f"{__name__}.{type(self).__name__}", {**kwargs, "settle_seconds": self.settle_seconds}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.settle_seconds)
        async for event in super().run():
            yield event


def settled_trigger(review: Any, context: Context) -> SettledHITLTrigger:
    """The trigger a retry of ``review`` (a ``HITLOperator``) waits on, for its own record."""
    timeout = getattr(review, "response_timeout", None)
    return SettledHITLTrigger(
        ti_id=context["task_instance"].id,
        options=review.options,
        defaults=review.defaults,
        params=review.serialized_params,
        multiple=review.multiple,
        # The wait starts again: a retry does not know when the first try began to wait.
        timeout_datetime=datetime.now(timezone.utc) + timeout if timeout else None,
    )


__all__ = [
    "RETRIES",
    "RETRY_DELAY",
    "SETTLE_SECONDS",
    "STATE_KEY",
    "SettledHITLTrigger",
    "asked_before",
    "mark",
    "settled_trigger",
    "time_limit",
]
