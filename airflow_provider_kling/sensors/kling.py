"""The sensor that waits for a Kling request to produce its video."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_kling.api import (
    PollSchedule,
    validate_byte_cap,
    validate_poll_failures,
    validate_request_id,
    validate_seconds,
)
from airflow_provider_kling.api.events import KlingEvent, parse_event
from airflow_provider_kling.api.waiting import DEFAULT_MAX_POLL_FAILURES, WaitState
from airflow_provider_kling.exceptions import (
    AirflowSensorTimeout,
    AirflowSkipException,
    KlingRequestFailedError,
    KlingWaitError,
)
from airflow_provider_kling.links.kling import KlingRequestLink, KlingVideoLink
from airflow_provider_kling.tasks.mixin import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    NOT_GIVEN,
    WAITING_TASK_RENAMES,
    DownloadSpec,
    KlingTaskMixin,
    default_deferrable,
    download_arguments,
)
from airflow_provider_kling.tasks.outputs import request_metadata
from airflow_provider_kling.tasks.start import (
    HANDOVER,
    airflow_ends_tasks_in_triggerer,
    choose_start_from_trigger,
    link_classpaths,
    start_arguments,
)

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import StartTriggerArgs

    from airflow_provider_kling.api.events import KlingResult

DEFAULT_POKE_INTERVAL = 10.0
# Where a rescheduled sensor keeps its wait between pokes (Airflow 3.3's task state store).
WAIT_STATE_KEY = "kling_wait"


def coerce_request_id(value: Any) -> str:
    """Accept a request id, or the dict a Kling task returned, and give the id."""
    return validate_request_id(value)


class KlingStatusSensor(KlingTaskMixin, BaseSensorOperator):
    """
    Wait for a Kling request to finish, and return its video URLs.

    It checks once right away; in deferrable mode it then hands the wait to
    :class:`~airflow_provider_kling.triggers.kling.KlingStatusTrigger`, freeing the worker
    slot. Retrying this sensor never submits anything, so it never costs money.

    On success the task returns (to XCom) ``{"request_id", "status", "media_urls",
    "outcome"}``, and its "Kling video" extra link opens the first video.

    :param request_id: the request to wait for (templated): the id that
        :class:`~airflow_provider_kling.operators.kling.KlingI2VOperator` returns, an
        ``XComArg`` of it, or the dict a Kling task returned.
    :param kling_conn_id: the ``kling`` connection holding the API key.
    :param deferrable: wait in the triggerer instead of a worker slot. Defaults to the
        ``[operators] default_deferrable`` setting.
    :param poke_interval: seconds between checks. By default, a deferred sensor follows
        :data:`~airflow_provider_kling.api.polling.DEFAULT_SCHEDULE` (first check 25 s after
        the submit, then about every 9.5 s, slowing down after 10 minutes: half the calls of
        5 s polling for a similar wait), and a sensor in poke or reschedule mode checks
        every 10 s. A number makes both check that often.
    :param timeout: seconds to wait before failing with ``AirflowSensorTimeout`` (a skip
        with ``soft_fail=True``). Default 3600.
    :param max_poll_failures: consecutive failed checks (each after the hook's own retries)
        tolerated, in every mode. Default 10. In reschedule mode the count survives between
        pokes only where Airflow has a task state store (3.3+).
    :param cancel_on_kill: when the task is killed, ask GMI to cancel the request (best
        effort: GMI documents no cancel call). Otherwise it keeps running and is billed.
    :param download_to: also stream the videos to this folder when the request succeeds:
        a local path, a URI (``s3://``, ``gs://``, ``file://``, ...) or an
        ``ObjectStoragePath`` (templated). The result gains ``files``
        (``[{"url", "uri", "size", "sha256"}]``).
    :param download_filename: the file name under ``download_to`` (templated; then
        ``{request_id}``, ``{index}`` and ``{image}``, the name of the image the Kling submit
        upstream recorded, are filled in). Default ``{{ run_id }}/{request_id}_{index}.mp4``.
    :param download_conn_id: the Airflow connection of the object store, if it needs one.
    :param download_max_bytes: refuse a larger video. Default 2 GiB.
    :param max_download_bytes: deprecated name of ``download_max_bytes`` (a ``DeprecationWarning``).
    :param request_info: what was submitted, for the asset events (templated):
        ``model``, ``prompt``, ``duration``, ``resolution``. GMI's record names the model
        but its payload echo is often empty, so without this the prompt, duration,
        resolution and cost of the event are ``None``.
    :param start_from_trigger: start in the triggerer, with no worker (Airflow 3.3+): the
        scheduler hands the sensor straight to a triggerer, which reads its ``request_id``
        (rendered, or this map index's value of a mapped one) and waits. ``None`` (the default):
        whenever it can, that is with ``deferrable=True`` outside ``mode='reschedule'`` on
        Airflow 3.3+; ``False``: start on a worker, which checks once and defers. Where the
        sensor has nothing left for a worker (no ``download_to``, no ``outlets``, no OpenLineage),
        the trigger also ends the task, with the XComs a worker would push; otherwise the task
        resumes on a worker for that part only. See :doc:`/sensors`.
    :raises KlingRequestFailedError: the request failed or was cancelled; the message
        carries GMI's error text.

    With ``outlets=[Asset(...)]`` each asset event's extra carries the request id, model,
    prompt, duration, resolution, estimated cost, video URLs and written URIs (read from
    GMI's record of the request).
    """

    template_fields: Sequence[str] = ("request_id", "download_to", "download_filename", "request_info")
    operator_extra_links = (KlingVideoLink(), KlingRequestLink())
    ui_color = "#fde8d7"

    def __init__(
        self,
        *,
        request_id: str,
        kling_conn_id: str = "kling_default",
        deferrable: bool | None = None,
        poke_interval: timedelta | float | None = None,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        max_poll_failures: int = DEFAULT_MAX_POLL_FAILURES,
        cancel_on_kill: bool = False,
        download_to: Any = None,
        download_filename: str | None = None,
        download_conn_id: str | None = None,
        download_max_bytes: int | None = DEFAULT_MAX_BYTES,
        max_download_bytes: int | None = NOT_GIVEN,
        request_info: dict[str, Any] | None = None,
        start_from_trigger: bool | None = None,
        **kwargs: Any,
    ) -> None:
        # partial() carries what it chose (see below); an unmapped task chooses again here.
        kwargs.pop("start_trigger_args", None)
        download = download_arguments(
            type(self).__name__,
            {"max_download_bytes": max_download_bytes},
            WAITING_TASK_RENAMES,
            download_to=download_to,
            download_filename=download_filename,
            download_conn_id=download_conn_id,
            download_max_bytes=download_max_bytes,
        )
        # Airflow's sensor needs a number for poke mode; remember whether the user chose it.
        self.fixed_interval = poke_interval is not None
        # Airflow's own check lets NaN through (every comparison with it is false).
        super().__init__(
            poke_interval=DEFAULT_POKE_INTERVAL
            if poke_interval is None
            else validate_seconds(poke_interval, "poke_interval"),
            timeout=validate_seconds(timeout, "timeout"),
            **kwargs,
        )
        self.request_info = request_info
        self.download_to = download["download_to"]
        self.download_filename = download["download_filename"]
        self.download_conn_id = download["download_conn_id"]
        self.download_max_bytes = validate_byte_cap(download["download_max_bytes"], "download_max_bytes")
        self.request_id = request_id
        self.kling_conn_id = kling_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_poll_failures = validate_poll_failures(max_poll_failures)
        self.cancel_on_kill = cancel_on_kill
        self._wait: WaitState | None = None
        self._ended: KlingEvent | None = None
        self.start_from_trigger = choose_start_from_trigger(
            start_from_trigger, deferrable=self.deferrable, reschedule=self.reschedule
        )
        own = {
            "download_to": self.download_to,
            "outlets": self.outlets,
            "kling_conn_id": self.kling_conn_id,
            "cancel_on_kill": self.cancel_on_kill,
            "timeout": self.timeout,
            # The default schedule unless the user chose an interval.
            "poke_interval": self.poke_interval if self.fixed_interval else None,
            "max_poll_failures": self.max_poll_failures,
        }
        self.start_trigger_args = self.start_arguments(own) if self.start_from_trigger else None

    @staticmethod
    def start_arguments(args: Mapping[str, Any]) -> StartTriggerArgs:
        """What the scheduler starts this sensor's trigger with, from the sensor's arguments (a
        mapped sensor's ``partial()`` ones): what is not given takes the sensor's default."""
        # OpenLineage is checked where the wait ends (KlingTaskTrigger.ending), not at parse time.
        nothing_left = (
            args.get("download_to") is None and not args.get("outlets") and airflow_ends_tasks_in_triggerer()
        )
        return start_arguments(
            kling_conn_id=args.get("kling_conn_id", "kling_default"),
            cancel_on_kill=args.get("cancel_on_kill", False),
            timeout=args.get("timeout", DEFAULT_TIMEOUT),
            poll_interval=args.get("poke_interval"),
            max_poll_failures=args.get("max_poll_failures", DEFAULT_MAX_POLL_FAILURES),
            ends_task=nothing_left,
            links=link_classpaths(KlingStatusSensor.operator_extra_links),
        )

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """
        Airflow's ``partial()``, which also chooses whether the mapped sensor starts in the
        triggerer: a mapped task is never built before the scheduler starts it, so the choice
        is made here, from the same arguments, and carried in the partial arguments.
        """
        chosen = super().partial(**kwargs)
        given = chosen.kwargs
        deferrable = given.get("deferrable")
        start = choose_start_from_trigger(
            given.get("start_from_trigger"),
            deferrable=default_deferrable() if deferrable is None else bool(deferrable),
            reschedule=given.get("mode") == "reschedule",
        )
        given["start_from_trigger"] = start
        if start:
            given["start_trigger_args"] = cls.start_arguments(given)
        return chosen

    def resume_from_trigger(self, context: Context, event: Any = None) -> Any:
        """Where a sensor the scheduler started in the triggerer resumes, if a worker is needed at all."""
        if isinstance(event, Mapping) and HANDOVER in event:
            self.log.info("The triggerer handed this wait to a worker: %s", event[HANDOVER])
            return self.execute(context)
        return self.execute_complete(context, event)

    def on_kill(self) -> None:
        try:
            request_id = coerce_request_id(self.request_id)
        except ValueError:
            return
        self.kill_request(request_id)

    def _new_wait(self, context: Context) -> WaitState:
        """The wait as it stands: this process's, a rescheduled try's from the state store, or new."""
        if self._wait is not None:
            return self._wait
        now = time.time()
        # A deferred wait keeps the provider's schedule unless the user chose an interval;
        # poke and reschedule modes check every poke_interval, as Airflow's sensors do.
        schedule = PollSchedule.for_interval(
            self.poke_interval if self.fixed_interval or not self.deferrable else None
        )
        started = now
        if self.reschedule:
            # A rescheduled sensor's timeout counts from its first poke, as Airflow's does.
            first = context["ti"].get_first_reschedule_date(context)
            started = first.timestamp() if first is not None else now
        fresh = WaitState(
            request_id=coerce_request_id(self.request_id),
            submitted_at=started,
            deadline=started + self.timeout,
            schedule=schedule,
            max_failures=self.max_poll_failures,
            # The sensor checks at once: the request was submitted by an upstream task.
            polled=True,
        )
        store = context.get("task_state_store")
        return fresh.resumed(store.get(WAIT_STATE_KEY)) if store is not None else fresh

    def poke(self, context: Context) -> PokeReturnValue | bool:
        """One check of the request, through the same step as every other way of waiting."""
        decision = self.poll_once(self._new_wait(context))
        self._wait = decision.state
        if decision.event is None:
            if self.reschedule and (store := context.get("task_state_store")) is not None:
                store.set(WAIT_STATE_KEY, decision.state.to_dict())
            return False
        result = self.result_of(context, decision.event)
        return PokeReturnValue(is_done=True, xcom_value=self.finish(context, result))

    def execute(self, context: Context) -> Any:
        if self.reschedule:
            # Each poke is its own try; Airflow reschedules between them.
            return super().execute(context)
        # A request that already finished needs no trigger, and no wait.
        done = self.poke(context)
        if isinstance(done, PokeReturnValue):
            return done.xcom_value
        assert self._wait is not None
        if self.deferrable:
            self.defer_wait(self._wait)
        self.log.info(
            "Waiting in this worker slot, which stays taken for up to %.0f s until Kling request %s "
            "ends. To free it, pass deferrable=True (the wait runs in the triggerer) or "
            "mode='reschedule', or set [operators] default_deferrable = True.",
            max(0.0, self._wait.deadline - time.time()),
            self._wait.request_id,
        )
        try:
            return self.finish(context, self.wait_here(context, self._wait))
        except AirflowSensorTimeout as timeout:
            if self.soft_fail or getattr(self, "never_fail", False):
                raise AirflowSkipException(str(timeout)) from timeout
            raise

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        # Airflow's sensor turns every error on resume into a skip under soft_fail, but a
        # failed or cancelled request must fail the task, as it does in poke mode; only the
        # timeout is a soft failure.
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as skip:
            if isinstance(skip.__cause__, KlingRequestFailedError | KlingWaitError):
                raise skip.__cause__ from None
            raise

    def download_spec(self) -> DownloadSpec | None:
        if self.download_to is None:
            return None
        return DownloadSpec(
            self.download_to, self.download_filename, self.download_conn_id, self.download_max_bytes
        )

    def result_of(self, context: Context, event: Any) -> KlingResult:
        # The event carries what the wait's last record said was submitted: keep it to describe
        # the video (every way of waiting passes here just before finish).
        self._ended = parse_event(event)
        return super().result_of(context, event)

    def asset_extra(self, result: KlingResult) -> Mapping[str, Any]:
        # From the record the last poll fetched, as the event carried it: no second fetch.
        ended = self._ended
        return request_metadata(
            result["request_id"],
            ended["model"] if ended is not None else None,
            ended["submitted"] if ended is not None else None,
            self.request_info,
        )


__all__ = ["DEFAULT_POKE_INTERVAL", "KlingStatusSensor", "coerce_request_id"]
