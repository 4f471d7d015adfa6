"""
A reviewed campaign: every video is approved by a person before it is published.

images -> budget -> [take_1 -> review_1 -> take_2 -> review_2 -> take_3 -> review_3 -> approved -> publish]
per image

Each image gets its own review loop (a ``@task_group`` expanded over the images): a take is a
Kling request that waits for its video without holding a worker; its review waits in Airflow's
Required Actions, where the reviewer plays the take and chooses Approve, Regenerate (with notes,
and optionally a new prompt) or Reject. Regenerate makes the next take of the same image with
the notes in its prompt, at most ``max_takes`` in all; ``budget`` caps every take of the batch,
so pressing Regenerate never spends more than ``max_total_usd``. A rejected video skips its
``publish``; an approved one is published with the approved take, its reviewer and the notes.
Reviews nobody answers within a day are rejected. ``KLING_REVIEW_POLL_SECONDS`` sets how often a
take checks for its video (the provider's default schedule when unset).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, task, task_group

from airflow_provider_kling.operators.budget import KlingBudgetOperator
from airflow_provider_kling.operators.review import kling_review_loop

SOURCE = Path(__file__).parent / "assets" / "product.png"
# Who may answer the reviews (Airflow user ids); everyone who may edit the DAG when unset.
REVIEWERS = [{"id": name, "name": name} for name in os.environ.get("KLING_REVIEWERS", "").split(",") if name]
CAMPAIGN = Asset("kling://campaign/approved")
POLL_SECONDS = os.environ.get("KLING_REVIEW_POLL_SECONDS")

with DAG(
    dag_id="kling_reviewed_campaign",
    description="Kling videos a person approves, regenerates with notes, or rejects before publishing",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["kling", "example", "review"],
    params={
        "count": Param(1, type="integer", minimum=1, maximum=50, description="How many images"),
        "max_total_usd": Param(5.0, type="number", minimum=0, description="Cap on every take of the batch"),
    },
):

    @task
    def images(params: dict[str, Any] | None = None) -> list[str]:
        """The campaign's images; in real use, list your own."""
        return [str(SOURCE)] * int((params or {}).get("count", 1))

    budget = KlingBudgetOperator(
        task_id="budget",
        requests=images(),
        defaults={"resolution": "720p", "duration": 5},
        max_total_usd="{{ params.max_total_usd }}",
    )

    @task_group
    def review(image: str) -> None:
        approved = kling_review_loop(
            first_frame=image,
            prompt="The camera slowly circles the product on a clean studio table",
            max_takes=3,
            assigned_users=REVIEWERS or None,
            response_timeout=timedelta(days=1),
            on_timeout="Reject",
            budget_task_id="budget",
            resolution="720p",
            duration=5,
            poll_interval=float(POLL_SECONDS) if POLL_SECONDS else None,
            outlets=[CAMPAIGN],
        )

        @task
        def publish(video: dict[str, Any]) -> str:
            """Publish the approved take (here: log it; in real use, upload it)."""
            print(f"Publishing take {video['take']} ({video['request_id']}), approved by {video['reviewer']}")
            return str(video["media_urls"][0])

        publish(approved.output)  # type: ignore[arg-type]  # resolved to the dict at run time

    review.expand(image=budget.output)
