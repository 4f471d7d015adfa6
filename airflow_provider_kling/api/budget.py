"""The estimated price of a whole batch of requests, checked against a cap before any is submitted.

Each request is priced by :func:`~airflow_provider_kling.api.estimate_cost`, the same
function the operators' per-task ``max_cost_usd`` uses, so a batch and its tasks agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_kling.api.errors import KlingValidationError
from airflow_provider_kling.api.validation import (
    estimate_cost,
    validate_duration,
    validate_model,
    validate_resolution,
    validate_usd,
)


@dataclass(frozen=True)
class BatchPrice:
    """
    What a batch would cost.

    :param count: how many requests.
    :param total_usd: the sum of the priced ones.
    :param unpriced: the positions of requests whose model has no known price.
    """

    count: int
    total_usd: float
    unpriced: tuple[int, ...] = ()

    def over(self, max_total_usd: float) -> str | None:
        """Why the batch must not be submitted under ``max_total_usd``, or ``None`` if it may."""
        max_total_usd = validate_usd(max_total_usd, "max_total_usd")
        if self.unpriced:
            shown = ", ".join(map(str, self.unpriced[:10])) + (" ..." if len(self.unpriced) > 10 else "")
            return (
                f"Batch not submitted: {len(self.unpriced)} of its {self.count} requests (positions "
                f"{shown}) are for a model without a known price, so its total cannot be checked "
                f"against max_total_usd=${max_total_usd:.3f}."
            )
        if not self.total_usd <= max_total_usd:
            return (
                f"Batch not submitted: the estimated total ${self.total_usd:.3f} for {self.count} requests "
                f"is over max_total_usd=${max_total_usd:.3f}. Submit fewer requests, lower their duration "
                "or resolution, or raise max_total_usd."
            )
        return None


def price_batch(requests: Sequence[Any], model: str, defaults: Mapping[str, Any] | None = None) -> BatchPrice:
    """
    Price every request of a batch.

    :param requests: one item per request: a dict of the request's arguments (``resolution``,
        ``duration``, optionally ``model``, or a ``payload`` dict holding them), or anything else
        (an image path, say) for a request made only of ``defaults``.
    :param model: the model of requests that do not name one.
    :param defaults: arguments every request shares (a mapped task's ``partial()`` arguments).
    :raises KlingValidationError: a resolution or duration no request could be sent with, named
        by its position (``requests[3].duration``).
    """
    total = 0.0
    unpriced: list[int] = []
    for index, item in enumerate(requests):
        args: dict[str, Any] = dict(defaults or {})
        if isinstance(item, Mapping):
            payload = item.get("payload")
            args.update(payload if isinstance(payload, Mapping) else item)
            args["model"] = item.get("model", args.get("model", model))
        name = validate_model(args.pop("model", model))
        try:
            if "resolution" in args:
                args["resolution"] = validate_resolution(args["resolution"])
            if "duration" in args:
                args["duration"] = validate_duration(args["duration"])
        except KlingValidationError as err:
            raise KlingValidationError(f"requests[{index}].{err.field}", err.problem, err.allowed) from None
        cost = estimate_cost(name, args)
        if cost is None:
            unpriced.append(index)
        else:
            total += cost
    return BatchPrice(count=len(requests), total_usd=round(total, 4), unpriced=tuple(unpriced))


__all__ = ["BatchPrice", "price_batch"]
