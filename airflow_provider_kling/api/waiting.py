"""The one polling step behind every way of waiting for a request.

The trigger, the operator's own wait and the sensor (poke and reschedule) only fetch records and
sleep; this step decides everything else: how long to sleep, when the deadline has passed, which
failed polls to tolerate, which end the wait at once, and what each outcome says. It does no I/O
and never sleeps, so one fault sequence can be replayed through every driver and give the same
verdicts (``tests/unit/test_waiting.py``).

Times are wall-clock Unix seconds: a wait can resume in another process (a triggerer restart, a
rescheduled sensor), where a monotonic clock would mean nothing.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_provider_kling.api.errors import KlingError, KlingValidationError
from airflow_provider_kling.api.events import (
    KlingEvent,
    error_event,
    event_from_record,
    timeout_event,
)
from airflow_provider_kling.api.polling import DEFAULT_SCHEDULE, PollSchedule, submitted_at
from airflow_provider_kling.api.records import KlingRequest, is_known_status
from airflow_provider_kling.api.validation import validate_number, validate_poll_failures, validate_whole

#: Consecutive failed polls (each after the hook's own retries) tolerated before a wait gives up.
DEFAULT_MAX_POLL_FAILURES = 10

Note = tuple[int, str]


@dataclass(frozen=True)
class WaitState:
    """
    A request in flight: everything a wait needs, from the submit answer to the wait's last event.

    It is the one value that crosses every process a wait moves through: the trigger serializes
    it as its ``state`` argument, and a rescheduled sensor keeps it in the task state store
    between pokes, both through :meth:`to_dict`.

    :param request_id: the request waited for.
    :param submitted_at: when it was submitted (Unix time): the schedule counts from it.
    :param deadline: when the wait gives up (Unix time).
    :param schedule: when to poll.
    :param max_failures: consecutive failed polls tolerated.
    :param failures: consecutive failed polls so far.
    :param last_status: the status of the last record read, if any.
    :param polled: whether a poll has happened (before it, the schedule's ``first`` applies).
    """

    request_id: str
    submitted_at: float
    deadline: float
    schedule: PollSchedule = DEFAULT_SCHEDULE
    max_failures: int = DEFAULT_MAX_POLL_FAILURES
    failures: int = 0
    last_status: str | None = None
    polled: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The wait as JSON, for a store that outlives the process."""
        return {
            "request_id": self.request_id,
            "submitted_at": self.submitted_at,
            "deadline": self.deadline,
            "schedule": self.schedule.to_dict(),
            "max_failures": self.max_failures,
            "failures": self.failures,
            "last_status": self.last_status,
            "polled": self.polled,
        }

    @classmethod
    def from_dict(cls, data: Any) -> WaitState:
        """
        The wait :meth:`to_dict` gave, as a resumed trigger reads it.

        :raises KlingValidationError: a field is missing or unusable (it is named).
        """
        if not isinstance(data, Mapping):
            shown = type(data).__name__
            raise KlingValidationError(
                "state", f"{shown} is not a mapping", "the dict WaitState.to_dict() gives"
            )
        request_id = data.get("request_id")
        if not isinstance(request_id, str) or not request_id:
            raise KlingValidationError(
                "request_id", f"{request_id!r} is not a request id", "a non-empty string"
            )
        schedule = data.get("schedule", DEFAULT_SCHEDULE.to_dict())
        if not isinstance(schedule, Mapping):
            raise KlingValidationError("schedule", f"{schedule!r} is not a mapping", "PollSchedule.to_dict()")
        return cls(
            request_id=request_id,
            schedule=PollSchedule.from_dict(schedule),
            max_failures=validate_poll_failures(data.get("max_failures", DEFAULT_MAX_POLL_FAILURES)),
            **_progress(data),
        )

    def resumed(self, saved: Any) -> WaitState:
        """
        This wait, continued from :meth:`to_dict` of the same request's earlier progress (a
        rescheduled sensor's last poke). The task's own schedule and failure budget stay: they
        are its arguments, which a changed DAG may have changed.
        """
        if not isinstance(saved, Mapping) or saved.get("request_id") != self.request_id:
            return self
        try:
            return replace(self, **_progress(saved))
        except ValueError:  # an unreadable saved wait starts afresh
            return self


def _progress(data: Mapping[str, Any]) -> dict[str, Any]:
    """How far a saved wait got; a NaN deadline would never pass, so every time must be finite."""
    unix = "a finite Unix time in seconds"
    status = data.get("last_status")
    return {
        "submitted_at": validate_number(data.get("submitted_at"), "submitted_at", allowed=unix),
        "deadline": validate_number(data.get("deadline"), "deadline", allowed=unix),
        "failures": validate_whole(data.get("failures", 0), "failures", allowed="a count, 0 or more"),
        "last_status": status if isinstance(status, str) else None,
        "polled": bool(data.get("polled", False)),
    }


@dataclass(frozen=True)
class Decision:
    """
    What to do next: sleep ``sleep`` seconds and poll again, or stop with ``event``.

    ``notes`` are log lines (level, message) for the driver to write, so every way of waiting
    logs the same timeline.
    """

    state: WaitState
    sleep: float = 0.0
    event: KlingEvent | None = None
    notes: tuple[Note, ...] = field(default=())

    @property
    def done(self) -> bool:
        return self.event is not None

    def log_to(self, log: Any) -> None:
        """Write the notes to a logger (any object with ``log(level, message)``)."""
        for level, message in self.notes:
            log.log(level, message)


def begin(state: WaitState, now: float, *, rng: random.Random | None = None) -> Decision:
    """The wait before the first poll: up to the schedule's ``first``, never past the deadline."""
    wait = state.schedule.wait(now - state.submitted_at, polled=state.polled, rng=rng)
    return Decision(state, sleep=max(0.0, min(wait, state.deadline - now)))


def step(
    state: WaitState,
    now: float,
    observed: KlingRequest | BaseException,
    *,
    rng: random.Random | None = None,
) -> Decision:
    """
    Decide after one poll, which gave a record or failed with an exception (``observed``).

    - A terminal record ends the wait with its event (a success without a video is an error).
    - A permanent error (bad key, unknown request, an unusable connection) ends it at once.
    - Any other failure counts against ``max_failures``; a record resets the count.
    - Past the deadline a running request ends the wait with ``timeout``.
    """
    if isinstance(observed, KlingRequest):
        return _after_record(state, now, observed, rng)
    return _after_error(state, now, observed, rng)


def _after_record(state: WaitState, now: float, record: KlingRequest, rng: random.Random | None) -> Decision:
    rid = state.request_id
    # GMI's own clock says when the request was made.
    origin = submitted_at(record.created_at, now, unknown=state.submitted_at)
    notes: list[Note] = []
    if record.status != state.last_status:
        if not is_known_status(record.status):
            notes.append(
                (
                    logging.WARNING,
                    f"Kling request {rid} has unknown status {record.status!r}; treating it as running",
                )
            )
        # One timeline line per change, with what it was and how long ago the request was
        # submitted, on one clock for every way of waiting (GMI's creation time when it gives one).
        was = f"before: {state.last_status}" if state.last_status else "first check"
        seen = f"Kling request {rid} is {record.status} ({was}); submitted {now - origin:.0f} s ago"
        notes.append((logging.INFO, seen))
    state = replace(state, submitted_at=origin, failures=0, last_status=record.status, polled=True)
    if record.is_terminal:
        return Decision(state, event=event_from_record(record), notes=tuple(notes))
    return _next(state, now, notes, rng)


def _after_error(state: WaitState, now: float, error: BaseException, rng: random.Random | None) -> Decision:
    rid = state.request_id
    if not isinstance(error, KlingError):
        # Not an answer's doing (a bug, an unexpected library error): name the type, since
        # the text alone may say nothing.
        message = f"Polling Kling request {rid} failed: {type(error).__name__}: {error}"
        return Decision(replace(state, polled=True), event=error_event(rid, message))
    if not error.transient:
        message = f"Polling Kling request {rid} failed: {error}"
        return Decision(replace(state, polled=True), event=error_event(rid, message))
    failures = state.failures + 1
    state = replace(state, failures=failures, polled=True)
    if failures >= state.max_failures:
        message = f"Polling Kling request {rid} failed {failures} times in a row: {error}"
        return Decision(state, event=error_event(rid, message))
    notes: list[Note] = [
        (logging.WARNING, f"Poll {failures} of Kling request {rid} failed, will retry: {error}")
    ]
    return _next(state, now, notes, rng)


def _next(state: WaitState, now: float, notes: list[Note], rng: random.Random | None) -> Decision:
    """Sleep until the next poll, or stop at the deadline."""
    age = now - state.submitted_at
    remaining = state.deadline - now
    if remaining <= 0:
        return Decision(
            state, event=timeout_event(state.request_id, state.last_status, age), notes=tuple(notes)
        )
    return Decision(
        state, sleep=min(state.schedule.wait(age, polled=True, rng=rng), remaining), notes=tuple(notes)
    )
