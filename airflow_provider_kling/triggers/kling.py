"""The trigger that waits for a Kling request in Airflow's triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_kling.api import (
    KlingValidationError,
    PollSchedule,
    validate_number,
    validate_poll_failures,
    validate_seconds,
)
from airflow_provider_kling.api.errors import KlingTransportError
from airflow_provider_kling.api.events import STILL_BILLING, KlingEvent, error_event
from airflow_provider_kling.api.waiting import DEFAULT_MAX_POLL_FAILURES, Decision, WaitState, begin, step

if TYPE_CHECKING:
    from airflow_provider_kling.api.records import KlingRequest
    from airflow_provider_kling.hooks.kling import KlingAsyncHook

__all__ = ["DEFAULT_MAX_POLL_FAILURES", "KlingStatusTrigger"]


class KlingStatusTrigger(BaseTrigger):
    """
    Poll one Kling request until it succeeds, fails, or the deadline passes.

    Yields exactly one event, a :class:`~airflow_provider_kling.api.events.KlingEvent`:
    ``status`` (``success``, ``failed``, ``cancelled``, ``timeout`` or ``error``),
    ``request_id``, ``message``, ``media_urls``, ``outcome`` and ``error``, and the ``model``
    and ``submitted`` values that GMI's last record named. Whatever an answer
    holds, ``run()`` never raises: a failure that no poll can mend is an ``error`` event.
    The decisions are :func:`airflow_provider_kling.api.waiting.step`'s, as in every other
    way of waiting.

    The wait is one value, ``state``: the
    :class:`~airflow_provider_kling.api.waiting.WaitState` the task deferred with (request,
    submit time, deadline, schedule, failure budget, where the wait stands), or its
    ``to_dict()``, which is what the trigger serializes. Without ``state``, the wait is built
    from the arguments below, the form a trigger serialized by an earlier version of the
    provider has:

    :param request_id: the request to wait for.
    :param end_time: the deadline as Unix time (``time.time()``). Wall-clock on purpose:
        a trigger can resume in another triggerer process after a restart, where a
        monotonic clock would mean nothing.
    :param kling_conn_id: the ``kling`` connection holding the API key.
    :param poll_interval: poll at once, then every this many seconds. ``None`` (the default)
        uses :data:`~airflow_provider_kling.api.polling.DEFAULT_SCHEDULE`: first poll 25 s
        after the submit, then about every 9.5 s, slowing to every 30 s for a request older
        than 10 minutes. Each sleep varies by up to 10%, so that many mapped tasks do not
        poll GMI in lockstep.
    :param max_poll_failures: consecutive failed polls (after the hook's own retries)
        tolerated before the trigger gives up with an ``error`` event.
    :param cancel_on_kill: when a user kills the deferred task (Airflow 3.3+), ask GMI to
        cancel the request (best effort). Otherwise it keeps running and is billed.
    :param submitted_at: when the request was submitted, as Unix time: the default schedule
        counts from it. Defaults to the trigger's creation.
    :param state: the wait as one value; then ``request_id``, ``end_time``,
        ``poll_interval``, ``max_poll_failures`` and ``submitted_at`` are not given.
    """

    def __init__(
        self,
        request_id: str | None = None,
        end_time: float | None = None,
        kling_conn_id: str = "kling_default",
        poll_interval: float | None = None,
        max_poll_failures: int = DEFAULT_MAX_POLL_FAILURES,
        cancel_on_kill: bool = False,
        submitted_at: float | None = None,
        *,
        state: WaitState | Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.kling_conn_id = kling_conn_id
        self.cancel_on_kill = bool(cancel_on_kill)
        if state is None:
            state = _state_of_arguments(request_id, end_time, poll_interval, max_poll_failures, submitted_at)
        else:
            given = {
                "request_id": request_id is not None,
                "end_time": end_time is not None,
                "poll_interval": poll_interval is not None,
                "max_poll_failures": max_poll_failures != DEFAULT_MAX_POLL_FAILURES,
                "submitted_at": submitted_at is not None,
            }
            named = [name for name, is_given in given.items() if is_given]
            if named:
                raise KlingValidationError(
                    "KlingStatusTrigger arguments",
                    f"state and {', '.join(named)} given together",
                    "state alone (it holds the whole wait), or the wait's arguments without state",
                )
        #: The wait, from the task's defer to this trigger's event.
        self.state = state if isinstance(state, WaitState) else WaitState.from_dict(state)

    # Read-only views of the state, under the names the trigger's arguments have.
    @property
    def request_id(self) -> str:
        return self.state.request_id

    @property
    def end_time(self) -> float:
        return self.state.deadline

    @property
    def submitted_at(self) -> float:
        return self.state.submitted_at

    @property
    def schedule(self) -> PollSchedule:
        return self.state.schedule

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # The classpath is a contract with triggers already in the database; so is each form
        # of kwargs ever written: __init__ still reads the earlier one.
        return (
            "airflow_provider_kling.triggers.kling.KlingStatusTrigger",
            {
                "state": self.state.to_dict(),
                "kling_conn_id": self.kling_conn_id,
                "cancel_on_kill": self.cancel_on_kill,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_kling.hooks.kling import KlingAsyncHook

        event: KlingEvent
        try:
            # Few retries inside one poll: the wait is the outer retry, and it keeps the
            # deadline in view.
            async with KlingAsyncHook(self.kling_conn_id, retry_limit=2, retry_max_delay=60.0) as hook:
                event = await self._wait(hook)
        except KlingValidationError as err:
            event = error_event(
                self.request_id, f"The Kling connection {self.kling_conn_id!r} is unusable: {err}"
            )
        except Exception as err:  # one event, always: a raise would end the task as a bare "Trigger failure"
            self.log.exception("The wait for Kling request %s failed", self.request_id)
            event = error_event(
                self.request_id,
                f"Waiting for Kling request {self.request_id} failed: {type(err).__name__}: {err}",
            )
        yield TriggerEvent(event)

    async def _wait(self, hook: KlingAsyncHook) -> KlingEvent:
        decision = begin(self.state, time.time())
        while decision.event is None:
            await asyncio.sleep(decision.sleep)
            decision = await self._poll_once(hook, decision.state)
        return decision.event

    async def _poll_once(self, hook: KlingAsyncHook, state: WaitState) -> Decision:
        # A poll may not outlive the wait's own deadline, however slowly an answer trickles in.
        budget = max(1.0, state.deadline - time.time())
        observed: KlingRequest | BaseException
        try:
            observed = await asyncio.wait_for(hook.get_request(state.request_id), timeout=budget)
        except asyncio.TimeoutError:
            late = f"get {state.request_id}: no answer before the wait's deadline"
            observed = KlingTransportError(late, sent=True)
        except Exception as err:  # the step decides which failures a wait survives
            observed = err
        decision = step(state, time.time(), observed)
        decision.log_to(self.log)
        return decision

    async def on_kill(self) -> None:
        """
        Called by Airflow 3.3+ when a user kills the deferred task; never on a triggerer restart.

        Airflow 3.3.2 also calls it on a triggerer whose triggers were handed to another one
        after its heartbeat lapsed (apache/airflow#73454): the task is then still deferred and
        another triggerer waits for the request, so it is cancelled only once the task
        instance has left the deferred state.
        """
        from airflow_provider_kling.hooks.kling import KlingAsyncHook

        if not self.cancel_on_kill:
            self.log.warning(STILL_BILLING, self.request_id)
            return
        if await self._still_deferred():
            self.log.warning(
                "Not cancelling Kling request %s: its task is still deferred, so another triggerer "
                "waits for it (this trigger was reassigned, not killed by a user).",
                self.request_id,
            )
            return
        try:
            async with KlingAsyncHook(self.kling_conn_id, retry_limit=1) as hook:
                await hook.cancel_request(self.request_id)
        except Exception as err:  # on_kill must not raise: log and let the kill proceed
            self.log.warning("Could not cancel Kling request %s: %s", self.request_id, err)

    async def _still_deferred(self) -> bool:
        """Whether the task instance still waits on a trigger; unknown counts as yes (cancel nothing)."""
        ti = getattr(self, "task_instance", None)
        if ti is None:  # not run by a triggerer: no other trigger can wait for the request
            return False
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance
            from asgiref.sync import sync_to_async

            states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
                dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
            )
        except Exception as err:
            self.log.warning("Could not read the state of the task waiting for %s: %s", self.request_id, err)
            return True
        return "deferred" in dict(states.get(ti.run_id) or {}).values()


def _state_of_arguments(
    request_id: str | None,
    end_time: float | None,
    poll_interval: float | None,
    max_poll_failures: int,
    submitted_at: float | None,
) -> WaitState:
    """The wait the trigger's own arguments describe (the form written before ``state``)."""
    if request_id is None:
        raise KlingValidationError("request_id", "not given", "the request to wait for, or state")
    # A NaN deadline would never pass: every time is checked to be a finite number.
    return WaitState(
        request_id=request_id,
        submitted_at=time.time() if submitted_at is None else _unix_time(submitted_at, "submitted_at"),
        deadline=_unix_time(end_time, "end_time"),
        schedule=PollSchedule.for_interval(
            None if poll_interval is None else validate_seconds(poll_interval, "poll_interval")
        ),
        max_failures=validate_poll_failures(max_poll_failures),
    )


def _unix_time(value: Any, field: str) -> float:
    return validate_number(value, field, allowed="a finite Unix time in seconds, such as time.time()")
