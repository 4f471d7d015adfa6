"""A reviewed video's takes as data, with no Airflow import: the choices, the next take's prompt,
the record of each review and why a video ended without an approved take.

The operators in :mod:`airflow_provider_kling.operators.review` put these on Airflow's
human-in-the-loop tasks; keeping the rules here lets the simulator-free unit tests and the
Kling videos view read the same records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_kling.api.errors import KlingValidationError
from airflow_provider_kling.api.validation import MAX_PROMPT_CHARS

APPROVE = "Approve"
REGENERATE = "Regenerate"
REJECT = "Reject"
#: What a review offers: Regenerate only while another take is allowed.
OPTIONS = (APPROVE, REGENERATE, REJECT)
#: What a review that times out may do (``None``: the review task fails, as Airflow's own do).
TIMEOUT_CHOICES = (APPROVE, REJECT)
#: The most takes a video may have: each is paid, and each is one review a person must answer.
MAX_TAKES_LIMIT = 10
#: XCom key of one review's record (also read by the Kling videos view).
REVIEW_KEY = "kling_review"
#: XCom key of a take's number, base prompt (before reviewer notes) and video: the first take's
#: task id, the same for every take of one loop (read by the Kling videos view to group them).
TAKE_KEY = "kling_take"
#: XCom key of why a take was not submitted (the batch budget), read by the ``approved`` step.
REFUSED_KEY = "kling_take_refused"
#: How reviewer notes are joined to the prompt of the next take.
NOTES_LEAD = "Reviewer notes: "


def validate_max_takes(value: Any) -> int:
    """``max_takes`` as an int from 1 to :data:`MAX_TAKES_LIMIT`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TAKES_LIMIT:
        raise KlingValidationError(
            "max_takes", f"{value!r} is not a whole number of takes", f"an int from 1 to {MAX_TAKES_LIMIT}"
        )
    return value


def validate_on_timeout(value: Any) -> str | None:
    """What a review does when nobody answers in time: ``"Reject"``, ``"Approve"`` or ``None`` (fail)."""
    if value is not None and value not in TIMEOUT_CHOICES:
        raise KlingValidationError("on_timeout", f"{value!r} is not a choice", "'Reject', 'Approve' or None")
    return None if value is None else str(value)


def options_for(take: int, max_takes: int) -> list[str]:
    """The choices of the review of ``take``: the last allowed take cannot be regenerated."""
    return list(OPTIONS) if take < max_takes else [APPROVE, REJECT]


def next_prompt(
    previous_base: str | None, notes: str | None, new_prompt: str | None
) -> tuple[str | None, str]:
    """
    The next take's ``(base prompt, prompt sent)``: the reviewer's new prompt, or the previous
    take's base prompt, followed by the reviewer's notes, so the model sees what to change.

    :raises KlingValidationError: the result is longer than the model takes; the message says
        to shorten the notes or the prompt, before anything is paid.
    """
    base = (new_prompt or "").strip() or previous_base
    notes = (notes or "").strip()
    sent = "\n".join(part for part in (base, f"{NOTES_LEAD}{notes}" if notes else "") if part)
    if len(sent) > MAX_PROMPT_CHARS:
        raise KlingValidationError(
            "notes",
            f"the prompt with the reviewer's notes is {len(sent)} characters",
            f"at most {MAX_PROMPT_CHARS} in all: shorter notes or a shorter new prompt",
        )
    return base, sent


def review_record(
    *,
    take: int,
    request_id: str | None,
    choice: str,
    params_input: Mapping[str, Any],
    reviewer: Mapping[str, Any] | None,
    responded_at: str | None,
    timed_out: bool,
) -> dict[str, Any]:
    """One review as it is pushed to XCom (:data:`REVIEW_KEY`) and returned by the review task."""
    notes = params_input.get("notes")
    new_prompt = params_input.get("new_prompt")
    return {
        "take": take,
        "request_id": request_id,
        "decision": choice,
        "reviewer": str(reviewer.get("name") or reviewer.get("id")) if reviewer else None,
        "notes": notes.strip() if isinstance(notes, str) and notes.strip() else None,
        "new_prompt": new_prompt.strip() if isinstance(new_prompt, str) and new_prompt.strip() else None,
        "responded_at": responded_at,
        "timed_out": timed_out,
    }


def notes_history(reviews: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every review's take, decision, reviewer and notes, in take order."""
    return [
        {key: review.get(key) for key in ("take", "decision", "reviewer", "notes", "new_prompt", "timed_out")}
        for review in sorted(reviews, key=lambda r: int(r.get("take") or 0))
    ]


def video_summary(reviews: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A reviewed video at a glance: the approved take and who approved it, and every review's notes."""
    approved = next((r for r in reviews if r.get("decision") == APPROVE), None)
    return {
        "approved_take": approved.get("take") if approved else None,
        "approved_by": approved.get("reviewer") if approved else None,
        "notes_history": notes_history(reviews),
    }


def why_not_approved(reviews: Sequence[Mapping[str, Any]], refused: str | None, max_takes: int) -> str:
    """Why a video has no approved take: the words its skipped ``approved`` step records."""
    if refused:
        return refused
    if not reviews:
        return "No take was reviewed: the first take was not made."
    last = max(reviews, key=lambda r: int(r.get("take") or 0))
    take, who = last.get("take"), last.get("reviewer")
    if last.get("timed_out"):
        return f"Take {take} was not reviewed in time: the review's timeout chose {last.get('decision')}."
    reason = f"Rejected by {who} at take {take}" if who else f"Rejected at take {take}"
    if take == max_takes:
        reason += f" of {max_takes} (max_takes reached)"
    return reason + (f": {last['notes']}" if last.get("notes") else ".")


__all__ = [
    "APPROVE",
    "MAX_TAKES_LIMIT",
    "NOTES_LEAD",
    "OPTIONS",
    "REFUSED_KEY",
    "REGENERATE",
    "REJECT",
    "REVIEW_KEY",
    "TAKE_KEY",
    "TIMEOUT_CHOICES",
    "next_prompt",
    "notes_history",
    "options_for",
    "review_record",
    "validate_max_takes",
    "validate_on_timeout",
    "video_summary",
    "why_not_approved",
]
