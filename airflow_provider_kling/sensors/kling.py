"""The sensor that waits for a Kling request to produce its video."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_kling.api.polling import submitted_at
from airflow_provider_kling.exceptions import (
    AirflowSkipException,
    KlingRequestFailedError,
    KlingTriggerEventError,
)
from airflow_provider_kling.links.kling import KlingRequestLink, KlingVideoLink
from airflow_provider_kling.outputs import (
    DEFAULT_MAX_BYTES,
    finish_result,
    request_metadata,
)
from airflow_provider_kling.results import STILL_BILLING, result_from_event, result_from_record

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.api import KlingRequest
    from airflow_provider_kling.hooks.kling import KlingHook

DEFAULT_POKE_INTERVAL = 10.0
# A video takes minutes; an hour means the request is stuck (GMI can leave a request
# "queued" forever for a model that stopped serving).
DEFAULT_TIMEOUT = 3600.0
# The scheduler's own deferral timeout runs a little longer than the trigger's deadline,
# so the trigger's clearer "still queued at the deadline" message normally wins.
_DEFER_GRACE = 120.0


def default_deferrable() -> bool:
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow < 3.2
        from airflow.configuration import conf
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


def handle_kill(task: Any, request_id: str) -> None:
    """What a killed Kling task does about its request: cancel it if asked, else say it runs on."""
    if task.cancel_on_kill:
        task.hook.cancel_request(request_id)
    else:
        task.log.warning(STILL_BILLING, request_id)


def log_status(log: Any, record: KlingRequest, waited: float | None = None) -> None:
    """
    Log a request's status with how long it has existed (GMI's ``created_at``) or, failing
    that, how long this task has waited, so a task log reads as a timeline.
    """
    elapsed = None
    if record.created_at is not None:
        from datetime import datetime, timezone

        elapsed = (datetime.now(timezone.utc) - record.created_at).total_seconds()
    if elapsed is not None:
        log.info("Kling request %s is %s (%.0f s since submit)", record.request_id, record.status, elapsed)
    elif waited is not None:
        log.info("Kling request %s is %s (after %.0f s of waiting)", record.request_id, record.status, waited)
    else:
        log.info("Kling request %s is %s", record.request_id, record.status)


def coerce_request_id(value: Any) -> str:
    """Accept a request id, or the dict a Kling task returned, and give the id."""
    if isinstance(value, dict):
        value = value.get("request_id")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            f"Invalid request_id: {value!r}. Allowed: the id string KlingI2VOperator pushes to XCom "
            "(for example submit.output), or the dict a Kling task returned."
        )
    return value.strip()


class KlingStatusSensor(BaseSensorOperator):
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
    :param max_poll_failures: consecutive failed checks tolerated in deferrable mode.
    :param cancel_on_kill: when the task is killed, ask GMI to cancel the request (best
        effort: GMI documents no cancel call). Otherwise it keeps running and is billed.
    :param download_to: also stream the videos to this folder when the request succeeds:
        a local path, a URI (``s3://``, ``gs://``, ``file://``, ...) or an
        ``ObjectStoragePath`` (templated). The result gains ``files``
        (``[{"url", "uri", "size", "sha256"}]``).
    :param download_filename: the file name under ``download_to`` (templated; then
        ``{request_id}`` and ``{index}`` are filled in). Default
        ``{{ run_id }}/{request_id}_{index}.mp4``.
    :param download_conn_id: the Airflow connection of the object store, if it needs one.
    :param max_download_bytes: refuse a larger video. Default 2 GiB.
    :param request_info: what was submitted, for the asset events (templated):
        ``model``, ``prompt``, ``duration``, ``resolution``. GMI's record names the model
        but its payload echo is often empty, so without this the prompt, duration,
        resolution and cost of the event are ``None``.
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
        max_poll_failures: int = 10,
        cancel_on_kill: bool = False,
        download_to: Any = None,
        download_filename: str | None = None,
        download_conn_id: str | None = None,
        max_download_bytes: int | None = DEFAULT_MAX_BYTES,
        request_info: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Airflow's sensor needs a number for poke mode; remember whether the user chose it.
        self.fixed_interval = poke_interval is not None
        super().__init__(
            poke_interval=DEFAULT_POKE_INTERVAL if poke_interval is None else poke_interval,
            timeout=timeout,
            **kwargs,
        )
        self._submitted_at: float | None = None
        self.request_info = request_info
        self.download_to = download_to
        self.download_filename = download_filename
        self.download_conn_id = download_conn_id
        self.max_download_bytes = max_download_bytes
        self.request_id = request_id
        self.kling_conn_id = kling_conn_id
        self.deferrable = default_deferrable() if deferrable is None else deferrable
        self.max_poll_failures = max_poll_failures
        self.cancel_on_kill = cancel_on_kill

    @cached_property
    def hook(self) -> KlingHook:
        from airflow_provider_kling.hooks.kling import KlingHook

        return KlingHook(self.kling_conn_id)

    def on_kill(self) -> None:
        try:
            request_id = coerce_request_id(self.request_id)
        except ValueError:
            return
        handle_kill(self, request_id)

    def poke(self, context: Context) -> PokeReturnValue | bool:
        request_id = coerce_request_id(self.request_id)
        record = self.hook.get_request(request_id)
        log_status(self.log, record)
        self._submitted_at = submitted_at(record.created_at, time.time())
        result = result_from_record(record)
        if result is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, result, record))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        # A request that already finished needs no trigger.
        done = self.poke(context)
        if isinstance(done, PokeReturnValue):
            return done.xcom_value
        from airflow_provider_kling.triggers.kling import KlingStatusTrigger

        self.defer(
            trigger=KlingStatusTrigger(
                request_id=coerce_request_id(self.request_id),
                end_time=time.time() + self.timeout,
                kling_conn_id=self.kling_conn_id,
                poll_interval=self.poke_interval if self.fixed_interval else None,
                max_poll_failures=self.max_poll_failures,
                cancel_on_kill=self.cancel_on_kill,
                submitted_at=self._submitted_at,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout + _DEFER_GRACE),
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        # Airflow's sensor turns every error on resume into a skip under soft_fail, but a
        # failed or cancelled request must fail the task, as it does in poke mode; only the
        # timeout is a soft failure.
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSkipException as skip:
            if isinstance(skip.__cause__, KlingRequestFailedError | KlingTriggerEventError):
                raise skip.__cause__ from None
            raise

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger fired: return the result, or raise what the event says."""
        result = result_from_event(event)
        self.log.info("Kling request %s succeeded: %s", result["request_id"], ", ".join(result["media_urls"]))
        return self._finish(context, result)

    def _finish(
        self, context: Context, result: dict[str, Any], record: KlingRequest | None = None
    ) -> dict[str, Any]:
        """Download the videos if asked, and describe them on the outlet assets' events."""

        def metadata() -> dict[str, Any]:
            # The event names model, prompt and duration: only GMI's record of the request knows them here.
            found = record or self.hook.get_request(result["request_id"])
            echo = found.raw.get("payload")
            return request_metadata(
                found.request_id, found.model, echo if isinstance(echo, dict) else None, self.request_info
            )

        return finish_result(self, context, result, metadata)
