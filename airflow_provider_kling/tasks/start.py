"""A Kling wait that costs no worker: started by the scheduler in a triggerer, ended there.

On Airflow 3.3+ the scheduler can hand a task straight to a triggerer (``start_from_trigger``),
and a trigger can end its task with ``TaskSuccessEvent`` / ``TaskFailedEvent``, whose XComs the
scheduler pushes and whose failure it routes to a retry when the task has one left. A deferrable
:class:`~airflow_provider_kling.sensors.kling.KlingStatusSensor` starts that way, and every
deferred Kling wait with nothing left for a worker (no download, no outlet asset, no OpenLineage)
ends that way: the task instance never, or only once, starts a worker process.

:class:`KlingTaskTrigger` is :class:`~airflow_provider_kling.triggers.kling.KlingStatusTrigger`
with the task's side: it finds the request id where a worker would have (the rendered
``request_id``, or the mapped value of this map index), and turns the wait's last event into the
task's end, with the XComs the worker path pushes. Whatever it cannot do the way a worker would,
it hands to a worker (``{"handover": reason}``), which runs the task as before.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import StartTriggerArgs, TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from airflow_provider_kling.api import (
    KlingValidationError,
    PollSchedule,
    validate_poll_failures,
    validate_request_id,
    validate_seconds,
)
from airflow_provider_kling.api.events import parse_event, result_of
from airflow_provider_kling.api.records import FAILED_STATUSES
from airflow_provider_kling.api.waiting import WaitState
from airflow_provider_kling.tasks.ledger import STATUS_KEY, failure_entry, success_entry
from airflow_provider_kling.tasks.mixin import DEFER_GRACE
from airflow_provider_kling.tasks.request_ids import OneValuePulls, request_id_of
from airflow_provider_kling.triggers.kling import KlingStatusTrigger

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

#: The event of a trigger that leaves the task to a worker, under this key (with the reason).
HANDOVER = "handover"
#: The method a task started in the triggerer resumes in, when it resumes on a worker at all.
RESUME_METHOD = "resume_from_trigger"


def airflow_ends_tasks_in_triggerer() -> bool:
    """Whether the running Airflow starts tasks in the triggerer with their templates rendered there and
    routes a trigger's failed task to its retries (3.3+)."""
    from airflow import __version__
    from packaging.version import Version

    return Version(Version(__version__).base_version) >= Version("3.3")


def lineage_enabled() -> bool:
    """
    Whether OpenLineage reports this task's completion, which only a worker's listener does.
    Read where the wait ends, never when a DAG is parsed (the provider is heavy to import).
    """
    try:
        from airflow.providers.openlineage.conf import is_disabled
    except ImportError:
        return False
    try:
        return not is_disabled()
    except Exception:  # an unreadable setting: assume it reports, and keep the worker
        return True


def choose_start_from_trigger(chosen: bool | None, *, deferrable: bool, reschedule: bool) -> bool:
    """
    Whether a sensor starts in the triggerer: ``chosen`` if given, else when it can.

    :raises KlingValidationError: ``start_from_trigger=True`` where it cannot be honoured.
    """
    allowed = (
        "True on Airflow 3.3+ with deferrable=True (not mode='reschedule'), False, or None (when it can)"
    )
    if chosen is not None and not isinstance(chosen, bool):
        raise KlingValidationError("start_from_trigger", f"{chosen!r} is not a boolean", allowed)
    possible = deferrable and not reschedule and airflow_ends_tasks_in_triggerer()
    if chosen and not possible:
        why = (
            "this Airflow has no rendered start in the triggerer (3.3+)"
            if not airflow_ends_tasks_in_triggerer()
            else "the sensor is not deferrable, or is in mode='reschedule'"
        )
        raise KlingValidationError("start_from_trigger", f"True, but {why}", allowed)
    return possible if chosen is None else chosen


def start_arguments(
    *,
    kling_conn_id: str,
    cancel_on_kill: bool,
    timeout: Any,
    poll_interval: Any,
    max_poll_failures: int,
    ends_task: bool,
    links: Mapping[str, str] | None = None,
) -> StartTriggerArgs:
    """What the scheduler starts a sensor's trigger with: everything but the request id,
    which the trigger reads from the task once Airflow has given it the task's context."""
    seconds = validate_seconds(timeout, "timeout")
    start = {
        "timeout": seconds,
        "poll_interval": None if poll_interval is None else validate_seconds(poll_interval, "poke_interval"),
        "max_poll_failures": validate_poll_failures(max_poll_failures),
    }
    return StartTriggerArgs(
        trigger_cls=f"{__name__}.KlingTaskTrigger",
        trigger_kwargs={
            "start": start,
            "kling_conn_id": kling_conn_id,
            "cancel_on_kill": bool(cancel_on_kill),
            "ends_task": bool(ends_task),
            "links": dict(links or {}),
        },
        next_method=RESUME_METHOD,
        next_kwargs=None,
        timeout=timedelta(seconds=seconds + DEFER_GRACE),
    )


class KlingTaskTrigger(KlingStatusTrigger):
    """
    The wait of a Kling task that may end the task itself (see the module's description).

    :param state: the wait, when a task deferred it from a worker (as for ``KlingStatusTrigger``).
    :param start: the wait's settings, when the scheduler started the task here:
        ``timeout``, ``poll_interval`` and ``max_poll_failures``; the request id is read from
        the task, and the deadline from the scheduler's deferral timeout.
    :param kling_conn_id: the ``kling`` connection holding the API key.
    :param cancel_on_kill: when a user kills the task, ask GMI to cancel the request.
    :param ends_task: end the task here when the request succeeds or fails (a worker has
        nothing left to do); otherwise, and always for a timeout, the task resumes on a worker.
    :param result_extra: keys the task adds to its result (the submit operator's price).
    :param links: the task's extra links, ``{xcom_key: classpath}`` (see :func:`link_classpaths`):
        stored as a worker stores them when a try ends, so the UI shows them.
    """

    def __init__(
        self,
        *,
        state: WaitState | Mapping[str, Any] | None = None,
        start: Mapping[str, Any] | None = None,
        kling_conn_id: str = "kling_default",
        cancel_on_kill: bool = False,
        ends_task: bool = True,
        result_extra: Mapping[str, Any] | None = None,
        links: Mapping[str, str] | None = None,
    ) -> None:
        if (state is None) == (start is None):
            raise KlingValidationError(
                "KlingTaskTrigger arguments", "give exactly one of state and start", "state or start"
            )
        # Started by the scheduler, the wait has no request yet: it is read in render_template_fields.
        unknown = WaitState(request_id="", submitted_at=0.0, deadline=0.0)
        super().__init__(
            state=unknown if state is None else state,
            kling_conn_id=kling_conn_id,
            cancel_on_kill=cancel_on_kill,
        )
        self.start = dict(start) if start is not None else None
        #: Whether ``state`` names the request (always, but for a start before the task's context).
        self.ready = start is None
        self.ends_task = bool(ends_task)
        self.result_extra = dict(result_extra or {})
        self.links = dict(links or {})
        #: Why a worker must run the task instead (set while reading the task's request id).
        self.handover: str | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "kling_conn_id": self.kling_conn_id,
            "cancel_on_kill": self.cancel_on_kill,
            "ends_task": self.ends_task,
            "result_extra": self.result_extra,
            "links": self.links,
        }
        if self.start is not None:
            kwargs["start"] = self.start
        else:
            kwargs["state"] = self.state.to_dict()
        return f"{__name__}.KlingTaskTrigger", kwargs

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Airflow 3.3's triggerer calls this, with the task's context, before ``run()``."""
        if self.start is None:
            return
        try:
            ti = context["ti"]
            seen = {**context, "ti": OneValuePulls(ti), "task_instance": OneValuePulls(ti)}
            value = request_id_of(
                self.task,
                context,
                lambda text: self.render_template(text, seen, jinja_env),  # type: ignore[arg-type]
            )
            request_id = validate_request_id(value)
        except LookupError as why:  # a shape a worker unmaps (the reason is the message)
            self.handover = str(why)
            return
        except Exception as err:  # the worker's execute gives the same error, where users look for it
            self.handover = f"the request id could not be read here: {type(err).__name__}: {err}"
            return
        self.state = self._started_wait(request_id)
        self.ready = True

    def _started_wait(self, request_id: str) -> WaitState:
        import time

        assert self.start is not None
        timeout = float(self.start["timeout"])
        # The scheduler fixed the deferral's timeout when it started the task: the deadline, read
        # back from it, is the same on every triggerer that ever runs this wait.
        limit = getattr(self, "timeout_after", None)
        deadline = limit.timestamp() - DEFER_GRACE if limit is not None else time.time() + timeout
        return WaitState(
            request_id=request_id,
            submitted_at=deadline - timeout,
            deadline=deadline,
            schedule=PollSchedule.for_interval(self.start["poll_interval"]),
            max_failures=int(self.start["max_poll_failures"]),
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if not self.ready and self.handover is None:
            # Not started by a 3.3 triggerer's rendering (a test run, an older triggerer).
            self.handover = "the triggerer gave this trigger no task context"
        if self.handover is not None:
            self.log.info("Handing this Kling task to a worker: %s", self.handover)
            yield TriggerEvent({HANDOVER: self.handover})
            return
        async for event in super().run():
            yield await self.ending(event.payload)

    async def on_kill(self) -> None:
        if self.ready:  # else no request is known here, and a worker may yet wait for it
            await super().on_kill()

    async def ending(self, payload: Any) -> TriggerEvent:
        """The task's end for the wait's last event, or the event itself for a worker to finish."""
        event = parse_event(payload)
        # Only a real triggerer, which gives each trigger its row's id, ends tasks; `dags test`
        # runs triggers inline, with no id, and reads only the payload.
        in_triggerer = self.trigger_id is not None
        if event is None or not self.ends_task or not in_triggerer or lineage_enabled():
            return TriggerEvent(payload)
        status = event["status"]
        if status == "success" and event["media_urls"]:
            result: dict[str, Any] = {**result_of(event), **self.result_extra}
            if not await self.push({"return_value": result, STATUS_KEY: success_entry(result)}):
                return TriggerEvent(payload)
            self.log.info(
                "Kling request %s succeeded: %s", result["request_id"], ", ".join(result["media_urls"])
            )
            return TaskSuccessEvent()
        if status in FAILED_STATUSES or status == "error":
            error = event["error"] if status != "error" else event["message"]
            if not await self.push({STATUS_KEY: failure_entry(event["request_id"], status, error)}):
                return TriggerEvent(payload)
            # The message a worker would raise, in the task's log (a trigger's log is the task's).
            self.log.error("%s", event["message"])
            return TaskFailedEvent()
        # A timeout keeps Airflow's sensor semantics (no retry; a skip with soft_fail): a worker ends it.
        return TriggerEvent(payload)

    async def push(self, values: Mapping[str, Any]) -> bool:
        """
        Push the task's XComs as a worker would, through the triggerer's own channel to the API
        server; ``False`` (the worker then finishes the task) if it refuses.

        Not as the task-end event's ``xcoms``: Airflow 3.3.2's scheduler stores those JSON-encoded
        twice (``XComModel.set`` serializes a value its JSON column serializes again), so a
        downstream task would read the result as a string.
        """
        from airflow.sdk.execution_time.xcom import XCom
        from asgiref.sync import sync_to_async

        ti = self.task_instance
        if ti is None:
            return False
        where: dict[str, Any] = {
            "dag_id": ti.dag_id,
            "task_id": ti.task_id,
            "run_id": ti.run_id,
            "map_index": ti.map_index,
        }
        try:
            for key, value in values.items():
                await sync_to_async(XCom.set)(key=key, value=value, **where)
            # The extra links a worker's task runner stores as a try ends, read from the XComs
            # just pushed (a key without ``state``: the links read what exists, by GetXCom alone).
            at = LinkKey(**where, try_number=getattr(ti, "try_number", 1))
            for key, path in self.links.items():
                module, _, name = path.rpartition(".")
                link = getattr(importlib.import_module(module), name)()
                value = await sync_to_async(link.get_link)(operator=None, ti_key=at)
                await sync_to_async(XCom.set)(key=key, value=value, **where)
        except Exception as err:  # the worker path still works: hand the end to it
            self.log.warning("Could not push the task's XComs from the triggerer (%s); a worker ends it", err)
            return False
        return True


@dataclass(frozen=True)
class LinkKey:
    """The task instance an extra link is evaluated for, as ``BaseOperatorLink.get_link`` reads it."""

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    try_number: int


def link_classpaths(links: Any) -> dict[str, str]:
    """A task's ``operator_extra_links`` as :class:`KlingTaskTrigger` takes them: key to classpath."""
    return {link.xcom_key: f"{type(link).__module__}.{type(link).__qualname__}" for link in links}


__all__ = [
    "HANDOVER",
    "RESUME_METHOD",
    "KlingTaskTrigger",
    "airflow_ends_tasks_in_triggerer",
    "choose_start_from_trigger",
    "lineage_enabled",
    "link_classpaths",
    "start_arguments",
]
