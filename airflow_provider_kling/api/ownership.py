"""
Whether a request GMI lists is the one a submit without an answer created.

A submit whose answer was lost may or may not have created a paid request, and GMI's list
holds every request of the organisation: other people's, other DAGs', earlier tries', some
with the very same inputs. A listed request is judged on two things GMI may show, its
creation time and its payload echo, and each may be missing:

* **ours**: created in the submit's window (not before the first send, to the second GMI
  stamps) and its echo equals what was sent after GMI's normalisation: adopt it.
* **not ours**: GMI shows it was created before the first send, or for other inputs.
* **maybe**: anything GMI leaves open (no ``created_at``, an empty echo, a time too close to
  call): it may be ours, so it is never adopted and never ignored.

Only a listing in which everything is "not ours" shows that nothing was created.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timezone
from typing import TYPE_CHECKING, Literal

from airflow_provider_kling.api.fingerprint import compare_echo

if TYPE_CHECKING:
    from airflow_provider_kling.api.records import KlingRequest

Judgement = Literal["ours", "not ours", "maybe"]

#: Seconds by which the clock behind an answer's ``Date`` header (a proxy's, possibly) may
#: differ from the one GMI stamps ``created_at`` with. Only used to rule a request out, so a
#: larger value makes fewer requests "not ours", never one "ours".
DATE_TOLERANCE = 10.0


@dataclass(frozen=True)
class ClockReading:
    """
    The ``Date`` header of one answer, with when the call was sent and answered (our clock).

    :param server: the header's time (whole seconds, the server's clock).
    :param sent: our clock when the call was sent.
    :param received: our clock when the answer arrived.
    """

    server: float
    sent: float
    received: float

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], sent: float, received: float) -> ClockReading | None:
        """The reading of an answer's ``Date`` header, or ``None`` without a readable one."""
        value = next((v for k, v in headers.items() if k.lower() == "date"), None)
        if not value:
            return None
        try:
            parsed = email.utils.parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if parsed.tzinfo is None:  # "-0000" means UTC, not local time
            parsed = parsed.replace(tzinfo=timezone.utc)
        return cls(parsed.timestamp(), sent, received)

    @property
    def offset_low(self) -> float:
        """
        A lower bound of (server clock - our clock): the header is the server's time cut to
        the second, stamped at the latest when the answer arrived.
        """
        return self.server - self.received


@dataclass(frozen=True)
class Window:
    """
    When a submit's request can have been created, in GMI's ``created_at`` seconds.

    :param not_before: a request created before this is not the submit's (GMI shows it).
    :param adopt_from: a request created before this is not adopted (it may still be ours).
    """

    not_before: float
    adopt_from: float

    @classmethod
    def unknown(cls) -> Window:
        """No first send to compare with: time rules nothing out, and adopts nothing."""
        return cls(-math.inf, math.inf)

    @classmethod
    def since(cls, first_send: float, clock: ClockReading | None) -> Window:
        """
        The window of a submit first sent at ``first_send`` (our clock), placed on GMI's clock
        as the listing's ``Date`` header shows it.

        Without a ``Date`` header our own clock decides what may be adopted, and time rules
        nothing out: a record's own timestamps are not trusted for that, since one stamp from
        a wrong clock would rule out every request, this submit's included.
        """
        if clock is None:
            return cls(-math.inf, math.floor(first_send))
        offset = clock.offset_low
        # A request GMI stamped with the second of the first send (on its clock) may be ours;
        # one stamped any earlier is never adopted, whatever slack the clocks would allow.
        return cls(math.floor(first_send + offset - DATE_TOLERANCE), math.floor(first_send + offset))


def judge(
    record: KlingRequest, model: str, payload: Mapping[str, object], window: Window
) -> tuple[Judgement, str]:
    """Whether ``record`` is the request a submit of ``payload`` to ``model`` created, and why."""
    inputs = compare_echo(model, payload, record.raw)
    created = record.created_at.timestamp() if record.created_at is not None else None
    if created is not None and created < window.not_before:
        return "not ours", "created before this submit was first sent"
    if inputs == "other":
        return "not ours", "its payload echo shows other inputs"
    if created is None:
        return "maybe", "GMI shows no creation time"
    if inputs == "unknown":
        return "maybe", "GMI's payload echo cannot be compared"
    if created < window.adopt_from:
        return "maybe", "created about when this submit was first sent, too close to tell"
    return "ours", "created since the submit, with this task's inputs"


__all__ = ["DATE_TOLERANCE", "ClockReading", "Judgement", "Window", "judge"]
