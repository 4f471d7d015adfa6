"""When to poll a request: fewer calls than fixed 5 s polling, for about the same wait.

A render takes from under a minute to several minutes. Polling every 5 s (what GMI's own examples do)
spends most calls on requests that cannot be done yet, and an organisation's rate limit is shared by
every poll of every task. The default schedule skips the first seconds, when no render is done, polls
about every 9.5 s while renders usually finish, and then slows down, so a request stuck in the queue
for an hour costs ~190 calls instead of 720. ``bench/polling.py`` measures it against fixed 5 s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from airflow_provider_kling.api.errors import KlingValidationError
from airflow_provider_kling.api.validation import validate_number, validate_seconds


@dataclass(frozen=True)
class PollSchedule:
    """
    Seconds between polls, as a function of the time since the request was submitted.

    :param first: the first poll comes this long after the submit (or at once, when the wait
        starts later than that, e.g. in a trigger resumed after a triggerer restart).
    :param interval: then one poll every this many seconds...
    :param slow_after: ...until the request is this old; after that the interval grows in
        proportion to its age...
    :param max_interval: ...up to this.
    :param jitter: each wait is multiplied by a random factor in ``1 ± jitter``, so that hundreds
        of mapped tasks submitted together do not poll GMI in lockstep.
    """

    first: float = 25.0
    interval: float = 9.5
    slow_after: float = 600.0
    max_interval: float = 30.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        for name, low in (("first", 0.0), ("interval", 1e-9), ("slow_after", 0.0)):
            value = getattr(self, name)
            if not value >= low:
                raise KlingValidationError(f"poll schedule {name}", repr(value), "a number of seconds >= 0")
        if not self.max_interval >= self.interval:
            raise KlingValidationError(
                "poll schedule max_interval",
                repr(self.max_interval),
                f"at least interval ({self.interval:g})",
            )
        if not 0 <= self.jitter < 1:
            raise KlingValidationError("poll schedule jitter", repr(self.jitter), "0 <= jitter < 1")

    @classmethod
    def fixed(cls, seconds: float, *, jitter: float = 0.1) -> PollSchedule:
        """Poll at once, then every ``seconds``: what ``poll_interval=<seconds>`` asks for."""
        seconds = validate_seconds(seconds, "poll_interval")
        return cls(first=0.0, interval=seconds, slow_after=math.inf, max_interval=seconds, jitter=jitter)

    @classmethod
    def for_interval(cls, seconds: float | None) -> PollSchedule:
        """What a task's ``poll_interval`` / ``poke_interval`` asks for: fixed if set, else the default."""
        return DEFAULT_SCHEDULE if seconds is None else cls.fixed(seconds)

    def to_dict(self) -> dict[str, float | None]:
        """The schedule as JSON, which has no infinity: a fixed schedule's ``slow_after`` is ``None``."""
        return {name: None if math.isinf(value) else value for name, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PollSchedule:
        """A schedule from :meth:`to_dict`; a key left out takes its default."""
        values: dict[str, float] = {}
        for name in (f.name for f in fields(cls) if f.name in data):
            field, value = f"poll schedule {name}", data[name]
            if name == "slow_after" and value is None:
                values[name] = math.inf
            else:
                values[name] = validate_number(value, field, allowed="a finite number of seconds")
        return cls(**values)

    def interval_at(self, age: float) -> float:
        """The interval, before jitter, after a poll of a request ``age`` seconds old."""
        if age <= self.slow_after:
            return self.interval
        return min(self.max_interval, self.interval * age / self.slow_after)

    def wait(self, age: float, *, polled: bool, rng: random.Random | None = None) -> float:
        """
        Seconds to sleep before the next poll.

        :param age: seconds since the request was submitted.
        :param polled: whether this wait has polled yet; before the first poll the wait runs to
            ``first`` (zero if that has passed). After a poll it is one interval, and still not
            before ``first``: a sensor checks at once, and the trigger it defers to then keeps
            the schedule rather than polling again within seconds.
        """
        first = self.first - age
        base = max(first, self.interval_at(age)) if polled else max(0.0, first)
        if base == 0.0 or self.jitter == 0.0:
            return base
        return base * (rng or random).uniform(1 - self.jitter, 1 + self.jitter)

    def poll_ages(self, until: float, *, rng: random.Random | None = None) -> Iterator[float]:
        """The ages at which a request is polled, up to the first poll at or after ``until``."""
        age = self.wait(0.0, polled=False, rng=rng)
        while True:
            yield age
            if age >= until:
                return
            age += self.wait(age, polled=True, rng=rng)


#: The schedule used unless a task sets ``poll_interval`` / ``poke_interval``.
DEFAULT_SCHEDULE = PollSchedule()


def submitted_at(created_at: datetime | None, now: float, *, unknown: float | None = None) -> float:
    """When a request was submitted, as Unix time, from GMI's ``created_at`` (whole seconds).

    GMI's clock may run ahead of ours: a time in the future counts as ``now``. Without a
    ``created_at`` the time is ``unknown`` (what the caller already knew), else ``now``.
    """
    if created_at is None:
        return now if unknown is None else unknown
    return min(created_at.timestamp(), now)
