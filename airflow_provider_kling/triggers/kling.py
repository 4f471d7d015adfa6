"""The trigger that waits for a Kling request in Airflow's triggerer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_kling.api import (
    DEFAULT_SCHEDULE,
    KlingError,
    KlingValidationError,
    PollSchedule,
    is_known_status,
)
from airflow_provider_kling.results import STILL_BILLING, event_from_record

if TYPE_CHECKING:
    from airflow_provider_kling.hooks.kling import KlingAsyncHook

DEFAULT_MAX_POLL_FAILURES = 10
# 4xx answers other than these are permanent: polling again cannot turn them into a video.
_TRANSIENT_4XX = frozenset({408, 409, 425, 429})


class KlingStatusTrigger(BaseTrigger):
    """
    Poll one Kling request until it succeeds, fails, or the deadline passes.

    Yields exactly one event, a dict with ``status`` (``success``, ``failed``,
    ``cancelled``, ``timeout`` or ``error``), ``request_id``, ``media_urls`` and
    ``message``; on success also ``outcome``.

    :param request_id: the request to wait for.
    :param kling_conn_id: the ``kling`` connection holding the API key.
    :param poll_interval: poll at once, then every this many seconds. ``None`` (the default)
        uses :data:`~airflow_provider_kling.api.polling.DEFAULT_SCHEDULE`: first poll 25 s
        after the submit, then about every 9.5 s, slowing to every 30 s for a request older
        than 10 minutes. Each sleep varies by up to 10%, so that many mapped tasks do not
        poll GMI in lockstep.
    :param submitted_at: when the request was submitted, as Unix time: the default schedule
        counts from it. Defaults to the trigger's creation, and is serialized, so a trigger
        resumed in another triggerer keeps its place in the schedule.
    :param end_time: the deadline as Unix time (``time.time()``). Wall-clock on purpose:
        a trigger can resume in another triggerer process after a restart, where a
        monotonic clock would mean nothing.
    :param max_poll_failures: consecutive failed polls (after the hook's own retries)
        tolerated before the trigger gives up with an ``error`` event.
    :param cancel_on_kill: when a user kills the deferred task (Airflow 3.3+), ask GMI to
        cancel the request (best effort). Otherwise it keeps running and is billed.
    """

    def __init__(
        self,
        request_id: str,
        end_time: float,
        kling_conn_id: str = "kling_default",
        poll_interval: float | None = None,
        max_poll_failures: int = DEFAULT_MAX_POLL_FAILURES,
        cancel_on_kill: bool = False,
        submitted_at: float | None = None,
    ) -> None:
        super().__init__()
        self.submitted_at = time.time() if submitted_at is None else float(submitted_at)
        self.cancel_on_kill = bool(cancel_on_kill)
        self.request_id = request_id
        self.end_time = float(end_time)
        self.kling_conn_id = kling_conn_id
        self.poll_interval = None if poll_interval is None else float(poll_interval)
        self.max_poll_failures = int(max_poll_failures)
        self.schedule = (
            DEFAULT_SCHEDULE if self.poll_interval is None else PollSchedule.fixed(self.poll_interval)
        )

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_kling.triggers.kling.KlingStatusTrigger",
            {
                "request_id": self.request_id,
                "end_time": self.end_time,
                "kling_conn_id": self.kling_conn_id,
                "poll_interval": self.poll_interval,
                "max_poll_failures": self.max_poll_failures,
                "cancel_on_kill": self.cancel_on_kill,
                "submitted_at": self.submitted_at,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_kling.hooks.kling import KlingAsyncHook

        try:
            # Few retries inside one poll: the loop below is the outer retry, and it
            # keeps the deadline in view.
            async with KlingAsyncHook(self.kling_conn_id, retry_limit=2, retry_max_delay=60.0) as hook:
                event = await self._poll(hook)
        except KlingValidationError as err:
            event = self._event("error", f"The Kling connection {self.kling_conn_id!r} is unusable: {err}")
        yield TriggerEvent(event)

    async def _poll(self, hook: KlingAsyncHook) -> dict[str, Any]:
        failures = 0
        last_status: str | None = None
        started = time.monotonic()
        first_wait = self.schedule.wait(self._age(), polled=False)
        if first_wait > 0:
            await asyncio.sleep(min(first_wait, max(0.0, self.end_time - time.time())))
        while True:
            try:
                record = await hook.get_request(self.request_id)
            except KlingError as err:
                status_code = getattr(err, "status_code", None)
                if _is_permanent(status_code):
                    return self._event("error", f"Polling Kling request {self.request_id} failed: {err}")
                failures += 1
                if failures >= self.max_poll_failures:
                    return self._event(
                        "error",
                        f"Polling Kling request {self.request_id} failed {failures} times in a row: {err}",
                    )
                self.log.warning(
                    "Poll %d of request %s failed, will retry: %s", failures, self.request_id, err
                )
            else:
                failures = 0
                if record.status != last_status:
                    self._log_transition(record.status, last_status, time.monotonic() - started)
                    last_status = record.status
                if record.is_terminal:
                    return event_from_record(record)
            remaining = self.end_time - time.time()
            if remaining <= 0:
                return self._event(
                    "timeout",
                    f"Kling request {self.request_id} was still {last_status or 'unreachable'} "
                    "at the deadline; "
                    "it may keep running (and billing) at GMI. A request stuck in 'queued' usually means "
                    "the model is not serving.",
                )
            await asyncio.sleep(min(remaining, self.schedule.wait(self._age(), polled=True)))

    def _age(self) -> float:
        return time.time() - self.submitted_at

    async def on_kill(self) -> None:
        """Called by Airflow 3.3+ when a user kills the deferred task; never on a triggerer restart."""
        from airflow_provider_kling.hooks.kling import KlingAsyncHook

        if not self.cancel_on_kill:
            self.log.warning(STILL_BILLING, self.request_id)
            return
        try:
            async with KlingAsyncHook(self.kling_conn_id, retry_limit=1) as hook:
                await hook.cancel_request(self.request_id)
        except Exception as err:  # on_kill must not raise: log and let the kill proceed
            self.log.warning("Could not cancel Kling request %s: %s", self.request_id, err)

    def _log_transition(self, status: str, previous: str | None, elapsed: float) -> None:
        if not is_known_status(status):
            self.log.warning(
                "Kling request %s has unknown status %r; treating it as running", self.request_id, status
            )
        self.log.info(
            "Kling request %s is %s (was %s) after %.0f s",
            self.request_id,
            status,
            previous or "unseen",
            elapsed,
        )

    def _event(self, status: str, message: str) -> dict[str, Any]:
        return {"status": status, "request_id": self.request_id, "media_urls": [], "message": message}


def _is_permanent(status_code: int | None) -> bool:
    return status_code is not None and 400 <= status_code < 500 and status_code not in _TRANSIENT_4XX
