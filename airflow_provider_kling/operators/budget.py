"""A cap on a whole batch: refuse, before any request is submitted, a batch that would cost too much."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_kling.api import I2V_MODEL, validate_model, validate_usd
from airflow_provider_kling.api.budget import price_batch
from airflow_provider_kling.exceptions import KlingCostLimitExceeded
from airflow_provider_kling.operators.submit import is_template

if TYPE_CHECKING:
    from airflow.sdk import Context


class KlingBudgetOperator(BaseOperator):
    """
    Price a whole batch of Kling requests and fail, before any is submitted, when the total is
    over ``max_total_usd``.

    Put it upstream of the mapped submits and map them over its output, which is ``requests``
    unchanged, so no submit can start unless the batch passed::

        budget = KlingBudgetOperator(
            task_id="budget",
            requests=list_images(),
            defaults={"resolution": "720p", "duration": 5},
            max_total_usd=15.0,
        )
        KlingI2VOperator.partial(task_id="submit", resolution="720p", duration=5).expand(
            first_frame=budget.output
        )

    Each request is priced as the operators price it for their own ``max_cost_usd``, which
    stays a per-task cap. Failing here skips every submit; the task is not retried, since the
    same batch would cost the same.

    :param requests: one item per request (templated; usually an upstream task's list): a dict
        of that request's arguments (``resolution``, ``duration``, optionally ``model``, or a
        ``payload`` dict as :class:`~airflow_provider_kling.operators.submit.KlingSubmitOperator`
        takes), or anything else, such as an image path, for a request of ``defaults`` only.
    :param max_total_usd: the most the batch may cost, in USD (templated: a template such as
        ``"{{ params.max_total_usd }}"`` is checked once rendered, when the task runs).
    :param defaults: arguments every request shares, as given to the mapped task's ``partial()``.
    :param model: the model of requests that do not name one. Default ``kling-3.0-turbo-i2v``.
    :return: ``requests`` as given, for the submits to map over. The price is pushed to XCom under
        ``batch_cost``: ``{"count", "total_usd", "max_total_usd"}``.
    :raises KlingCostLimitExceeded: the total is over the cap, or a request's model has no price;
        the message names the total, the cap and the count.
    """

    template_fields: Sequence[str] = ("requests", "defaults", "model", "max_total_usd")
    ui_color = "#fbd3b7"

    def __init__(
        self,
        *,
        requests: Any,
        max_total_usd: float | str,
        defaults: Mapping[str, Any] | None = None,
        model: str = I2V_MODEL,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.requests = requests
        self.max_total_usd: Any = (
            max_total_usd if is_template(max_total_usd) else validate_usd(max_total_usd, "max_total_usd")
        )
        self.defaults = dict(defaults or {})
        self.model = model
        if not is_template(model):
            validate_model(model)

    def execute(self, context: Context) -> Any:
        if isinstance(self.requests, str | bytes | Mapping) or not isinstance(self.requests, Iterable):
            raise ValueError(
                f"Invalid requests: a {type(self.requests).__name__} is not a list. "
                "Allowed: a list with one item per request."
            )
        # An upstream mapped task's output is a lazy sequence: read it once, return it as a list.
        requests = list(self.requests)
        # Checked again once rendered: a template may give "nan" or "inf", which would pass any total.
        cap = validate_usd(self.max_total_usd, "max_total_usd")
        price = price_batch(requests, self.model, self.defaults)
        self.log.info(
            "Kling batch of %d requests: estimated total $%.3f (cap $%.3f)", price.count, price.total_usd, cap
        )
        summary = {"count": price.count, "total_usd": price.total_usd, "max_total_usd": cap}
        context["ti"].xcom_push(key="batch_cost", value=summary)
        refusal = price.over(cap)
        if refusal is not None:
            raise KlingCostLimitExceeded(refusal)
        return requests


__all__ = ["KlingBudgetOperator"]
