"""A person reviews each video before it is published: Approve, Regenerate with notes, or Reject.

Built on Airflow's human-in-the-loop operators (3.1+, the standard provider): each review is a
:class:`~airflow.providers.standard.operators.hitl.HITLOperator`, answered in the UI's Required
Actions. Airflow keeps one HITL record per task instance, so each review, and each take, is its
own task: :func:`kling_review_loop` chains ``take_1 -> review_1 -> take_2 -> ... -> approved``,
and a take after a review that did not say Regenerate skips, and with it the rest of the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.sdk import BaseOperator, Param

from airflow_provider_kling.api import validate_usd
from airflow_provider_kling.api.review import (
    APPROVE,
    REFUSED_KEY,
    REGENERATE,
    REVIEW_KEY,
    TAKE_KEY,
    next_prompt,
    notes_history,
    options_for,
    review_record,
    validate_max_takes,
    validate_on_timeout,
    why_not_approved,
)
from airflow_provider_kling.exceptions import AirflowFailException, AirflowSkipException
from airflow_provider_kling.operators import review_wait
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.tasks.ledger import COST_KEY, REQUEST_KEY, RequestEntry
from airflow_provider_kling.tasks.outputs import set_asset_extras

try:
    from airflow.providers.standard.exceptions import HITLTimeoutError
    from airflow.providers.standard.operators.hitl import HITLOperator

    HITL_MISSING: str | None = None
except ImportError as err:  # the standard provider before 1.9, or Airflow before 3.1
    HITL_MISSING = f"Airflow's human-in-the-loop operators are missing ({err}): review needs Airflow 3.1+"
    HITLOperator = BaseOperator  # type: ignore[misc,assignment]
    HITLTimeoutError = TimeoutError  # type: ignore[misc,assignment]

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_kling.api.models import PreparedPayload

#: XCom key of how a video's review ended: approved (take, reviewer, notes) or why not.
OUTCOME_KEY = "kling_review_outcome"


def _pull(context: Context, task_id: str, key: str = "return_value") -> Any:
    ti = context["ti"]
    # The map index is explicit: each video of a mapped batch reads its own takes.
    return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=ti.map_index)


class KlingTakeOperator(KlingI2VOperator):
    """
    One take of a reviewed video: :class:`~airflow_provider_kling.operators.kling.KlingI2VOperator`
    (same image, submit-once across retries and clears), made only when the review before it
    said Regenerate, with the reviewer's notes (and new prompt) in its prompt.

    :param take: this take's number, from 1.
    :param review_task_id: the review of the take before (``None`` for take 1).
    :param take_task_ids: every take task of the loop, whose prices count against the cap.
    :param max_total_usd: the most all takes of the batch may cost (templated); a take that would
        go over it is not submitted, and its video ends without an approved take.
    :param budget_task_id: read the cap from this
        :class:`~airflow_provider_kling.operators.budget.KlingBudgetOperator`'s ``batch_cost``.
    """

    template_fields: Sequence[str] = (*KlingI2VOperator.template_fields, "max_total_usd")

    def __init__(
        self,
        *,
        take: int,
        review_task_id: str | None = None,
        take_task_ids: Sequence[str] = (),
        max_total_usd: float | str | None = None,
        budget_task_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.take = take
        self.review_task_id = review_task_id
        self.take_task_ids = list(take_task_ids) or [self.task_id]
        self.max_total_usd = max_total_usd
        self.budget_task_id = budget_task_id
        self._prepared: PreparedPayload | None = None

    def execute(self, context: Context) -> Any:
        base = self.prompt
        if self.review_task_id is not None:
            review = _pull(context, self.review_task_id)
            decision = review.get("decision") if isinstance(review, Mapping) else None
            if decision != REGENERATE:
                last = self.take - 1
                raise AirflowSkipException(f"Take {self.take} not needed: take {last} was {decision}")
            previous = _pull(context, self.take_task_ids[self.take - 2], TAKE_KEY)
            earlier = previous.get("base_prompt") if isinstance(previous, Mapping) else self.prompt
            base, self.prompt = next_prompt(earlier, review.get("notes"), review.get("new_prompt"))
        take = {"take": self.take, "base_prompt": base, "video": self.take_task_ids[0]}
        context["ti"].xcom_push(key=TAKE_KEY, value=take)
        self.check_budget(context, self.prepare())
        return super().execute(context)

    def prepare(self) -> PreparedPayload:
        # The budget check and the submit read the same one pass over the inputs.
        if self._prepared is None:
            self._prepared = super().prepare()
        return self._prepared

    def cap(self, context: Context) -> float | None:
        if self.max_total_usd is not None:
            return validate_usd(self.max_total_usd, "max_total_usd")
        if self.budget_task_id is None:
            return None
        batch = context["ti"].xcom_pull(task_ids=self.budget_task_id, key="batch_cost", map_indexes=-1)
        return validate_usd(batch["max_total_usd"], "max_total_usd") if isinstance(batch, Mapping) else None

    def check_budget(self, context: Context, prepared: PreparedPayload) -> None:
        """
        Refuse a take that would take the batch's takes over the cap. The price is pushed first,
        so two takes checking at once each count the other: both may be refused, never both paid.
        """
        cap = self.cap(context)
        if cap is None:
            return
        ti = context["ti"]
        ti.xcom_push(key=COST_KEY, value=prepared.estimated_cost_usd)
        # Every take task of the loop, every map index: the whole batch's spend.
        prices = ti.xcom_pull(task_ids=self.take_task_ids, key=COST_KEY)
        spent = sum(p for p in prices or [] if isinstance(p, int | float) and not isinstance(p, bool))
        if spent <= cap and prepared.estimated_cost_usd is not None:
            return
        ti.xcom_push(key=COST_KEY, value=None)  # withdrawn: nothing was submitted
        reason = (
            f"Take {self.take} not submitted: the batch's takes would cost ${spent:.3f}, over its "
            f"budget max_total_usd=${cap:.3f}."
        )
        ti.xcom_push(key=REFUSED_KEY, value=reason)
        raise AirflowSkipException(reason)


class KlingReviewOperator(HITLOperator):
    """
    The review of one take, in Airflow's Required Actions: the video (a link that plays it in
    the Kling videos view, and GMI's thumbnail), the image, the prompt, the take number and the
    cost so far; the choices Approve, Regenerate (with ``notes`` and an optional ``new_prompt``)
    and Reject. The last allowed take offers no Regenerate. It retries once by default, taking
    an answer an earlier try got (:mod:`~airflow_provider_kling.operators.review_wait`).

    :param take_task_id: the take this reviews.
    :param take: its number; ``max_takes``: the most takes of this video.
    :param take_task_ids: the loop's take tasks, for the cost so far.
    :param image: the image the takes animate, shown when it is a URL or a path (templated).
    :param on_timeout: what a review nobody answered within ``response_timeout`` does:
        ``"Reject"`` (default), ``"Approve"``, or ``None`` to fail the task (not retried).
    """

    template_fields: Sequence[str] = (*HITLOperator.template_fields, "image")

    def __init__(
        self,
        *,
        take_task_id: str,
        take: int,
        max_takes: int,
        take_task_ids: Sequence[str] = (),
        image: Any = None,
        on_timeout: str | None = "Reject",
        response_timeout: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        if HITL_MISSING:
            raise RuntimeError(HITL_MISSING)
        validate_max_takes(max_takes)
        timeout_choice = validate_on_timeout(on_timeout)
        kwargs.setdefault("subject", f"Review take {take} of {max_takes}")
        # The DAG's own params reach every task; a review's form has only its own two fields.
        kwargs.pop("params", None)
        kwargs.setdefault("retries", review_wait.RETRIES)
        kwargs.setdefault("retry_delay", review_wait.RETRY_DELAY)
        super().__init__(
            options=options_for(take, max_takes),
            defaults=[timeout_choice] if timeout_choice else None,
            # Both fields may be left empty: the Required Actions form marks a field required,
            # and disables every button until it is filled, unless its type allows null.
            params={
                "notes": Param(None, type=["null", "string"], title="Notes for the next take"),
                "new_prompt": Param(None, type=["null", "string"], title="New prompt (optional)"),
            },
            **review_wait.time_limit(HITLOperator, response_timeout),
            **kwargs,
        )
        self.take_task_id = take_task_id
        self.take = take
        self.max_takes = max_takes
        self.take_task_ids = list(take_task_ids) or [take_task_id]
        self.image = image

    def execute(self, context: Context) -> Any:
        self.body = self.describe(context)
        if review_wait.asked_before(context):  # Airflow 3.3.2's race: the answer may be there already
            self.log.info("Take %s's review asked before: waiting on its answer, not asking again", self.take)
            self.defer(trigger=review_wait.settled_trigger(self, context), method_name="execute_complete")
        review_wait.mark(context, answered=False)
        return super().execute(context)

    def describe(self, context: Context) -> str:
        """The Markdown the reviewer reads: the take's video, image, prompt, number and cost so far."""
        ti = context["ti"]
        result = _pull(context, self.take_task_id) or {}
        request = RequestEntry.from_xcom(_pull(context, self.take_task_id, REQUEST_KEY))
        earlier = [_pull(context, t, COST_KEY) for t in self.take_task_ids[: self.take]]
        spent = sum(c for c in earlier if isinstance(c, int | float) and not isinstance(c, bool))
        request_id = result.get("request_id") or (request.request_id if request else "")
        view = "/kling/?" + urlencode(
            {"dag_id": ti.dag_id, "run_id": ti.run_id, "request_id": request_id}, quote_via=quote
        )
        lines = [f"**Take {self.take} of {self.max_takes}** · cost so far **${spent:.3f}**", ""]
        lines.append(f"[▶ Play take {self.take} in the Kling videos view]({view})")
        thumbnail = (result.get("outcome") or {}).get("thumbnail_image_url")
        if isinstance(thumbnail, str) and thumbnail.startswith("https://"):
            lines += ["", f"![Take {self.take}]({thumbnail})"]
        lines += ["", f"**Prompt:** {request.prompt if request and request.prompt else '(none)'}"]
        if isinstance(self.image, str) and self.image.startswith(("http://", "https://")):
            lines += ["", f"**Image:** [{self.image}]({self.image})", "", f"![Image]({self.image})"]
        elif isinstance(self.image, str) and len(self.image) < 500:
            lines += ["", f"**Image:** `{self.image}`"]
        if REGENERATE in self.options:
            lines += ["", "Regenerate makes a new take of the same image, your notes added to the prompt."]
        else:
            lines += ["", f"This is the last take (max_takes={self.max_takes}): Approve or Reject."]
        return "\n".join(lines)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        try:
            answer = super().execute_complete(context=context, event=event)
        except HITLTimeoutError as err:  # on_timeout=None: the review fails, and is not asked again
            raise AirflowFailException(f"Take {self.take} was not reviewed in time") from err
        result = _pull(context, self.take_task_id) or {}
        responded_at = answer["responded_at"]
        record = review_record(
            take=self.take,
            request_id=result.get("request_id"),
            choice=answer["chosen_options"][0],
            params_input=answer["params_input"],
            reviewer=answer["responded_by_user"],
            responded_at=responded_at.isoformat() if hasattr(responded_at, "isoformat") else responded_at,
            timed_out=bool(event.get("timedout")) or answer["responded_by_user"] is None,
        )
        self.log.info("Take %s %s by %s", self.take, record["decision"], record["reviewer"] or "timeout")
        context["ti"].xcom_push(key=REVIEW_KEY, value=record)
        review_wait.mark(context, answered=True)
        return record


class KlingApprovedOperator(BaseOperator):
    """
    The end of a review loop: returns the approved take's result (with ``take``, ``reviewer``
    and ``notes_history``) and puts them on its outlets' asset events; when no take was
    approved it skips, so what is downstream skips too, with the reason in its log and in XCom
    (``kling_review_outcome``).
    """

    ui_color = "#c8e6c9"

    def __init__(
        self, *, take_task_ids: Sequence[str], review_task_ids: Sequence[str], max_takes: int, **kwargs: Any
    ) -> None:
        # Runs when the chain stopped early (its later steps skipped); not after a failure.
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.take_task_ids = list(take_task_ids)
        self.review_task_ids = list(review_task_ids)
        self.max_takes = max_takes

    def execute(self, context: Context) -> Any:
        ti = context["ti"]
        reviews = [r for r in (_pull(context, t) for t in self.review_task_ids) if isinstance(r, Mapping)]
        history = notes_history(reviews)
        approved = next((r for r in reviews if r.get("decision") == APPROVE), None)
        if approved is None:
            refused = [_pull(context, t, REFUSED_KEY) for t in self.take_task_ids]
            reason = why_not_approved(reviews, next((r for r in refused if r), None), self.max_takes)
            outcome = {"approved": False, "reason": reason, "notes_history": history}
            ti.xcom_push(key=OUTCOME_KEY, value=outcome)
            raise AirflowSkipException(f"No approved take: {reason}")
        take_task = self.take_task_ids[int(approved["take"]) - 1]
        result = dict(_pull(context, take_task) or {})
        request = RequestEntry.from_xcom(_pull(context, take_task, REQUEST_KEY))
        review = {"take": approved["take"], "reviewer": approved["reviewer"], "notes_history": history}
        result.update(review)
        ti.xcom_push(key=OUTCOME_KEY, value={"approved": True, **review})
        if self.outlets:
            extra = request.asset_extra() if request else {"request_id": result.get("request_id")}
            uris = [f["uri"] for f in result.get("files") or []]
            media = {"media_urls": result.get("media_urls"), "uris": uris}
            set_asset_extras(self.outlets, context, {**extra, **media, **review})
        self.log.info("Take %s approved by %s", approved["take"], approved["reviewer"] or "timeout")
        return result


def kling_review_loop(
    *,
    first_frame: Any,
    prompt: str | None = None,
    max_takes: int = 3,
    assigned_users: Any = None,
    response_timeout: timedelta | None = None,
    on_timeout: str | None = "Reject",
    max_total_usd: float | str | None = None,
    budget_task_id: str | None = None,
    notifiers: Any = None,
    outlets: Any = None,
    **take_kwargs: Any,
) -> KlingApprovedOperator:
    """
    The takes and reviews of one video, in the current DAG or task group: ``take_1``,
    ``review_1``, ... up to ``max_takes`` of each, and ``approved``, which it returns. Called
    in a ``@task_group`` that is ``.expand()``-ed over images, each video gets its own chain
    and its own reviews in Required Actions.

    :param first_frame: the image every take animates (templated, or the group's mapped argument).
    :param prompt: the first take's prompt; a Regenerate adds the reviewer's notes to it.
    :param max_takes: the most takes (each paid once), 1 to 10. Default 3.
    :param assigned_users: who may answer the reviews (``{"id", "name"}`` or a list of them);
        anyone who may edit the DAG when ``None``.
    :param response_timeout: how long a review waits; then ``on_timeout`` decides.
    :param on_timeout: ``"Reject"`` (default), ``"Approve"`` or ``None`` (the review fails).
    :param max_total_usd: the cap on every take of the batch; or ``budget_task_id``: the
        ``KlingBudgetOperator`` whose cap applies.
    :param outlets: the assets the ``approved`` step emits an event for.
    :param take_kwargs: the rest go to each take's ``KlingI2VOperator`` (``resolution``,
        ``duration``, ``download_to``, ...). Takes wait deferrably for their video by default.
    """
    max_takes = validate_max_takes(max_takes)
    take_kwargs = {"wait_for_completion": True, "deferrable": True, **take_kwargs}
    takes: list[KlingTakeOperator] = []
    reviews: list[KlingReviewOperator] = []
    for n in range(1, max_takes + 1):
        take = KlingTakeOperator(
            task_id=f"take_{n}",
            take=n,
            review_task_id=reviews[-1].task_id if reviews else None,
            first_frame=first_frame,
            prompt=prompt,
            max_total_usd=max_total_usd,
            budget_task_id=budget_task_id,
            **take_kwargs,
        )
        review = KlingReviewOperator(
            task_id=f"review_{n}",
            take_task_id=take.task_id,
            take=n,
            max_takes=max_takes,
            image=first_frame,
            assigned_users=assigned_users,
            response_timeout=response_timeout,
            on_timeout=on_timeout,
            notifiers=notifiers,
        )
        if reviews:
            reviews[-1] >> take
        take >> review
        takes.append(take)
        reviews.append(review)
    ids = [take.task_id for take in takes]
    for step in (*takes, *reviews):
        step.take_task_ids = ids
    approved = KlingApprovedOperator(
        task_id="approved",
        take_task_ids=ids,
        review_task_ids=[review.task_id for review in reviews],
        max_takes=max_takes,
        outlets=outlets or [],
    )
    reviews[-1] >> approved
    return approved


__all__ = [
    "HITL_MISSING",
    "OUTCOME_KEY",
    "TAKE_KEY",
    "KlingApprovedOperator",
    "KlingReviewOperator",
    "KlingTakeOperator",
    "kling_review_loop",
]
