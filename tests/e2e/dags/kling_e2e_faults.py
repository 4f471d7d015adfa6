"""
DAGs only the end-to-end tests run: the provider's tasks while workers and triggerers fail.

``kling_e2e_worker_kill``: one request submitted, waited for in the worker (not deferred, so a
killed worker takes the wait with it) and streamed to ``KLING_EXAMPLE_OUT``, with retries.
``kling_e2e_reassign``: ``count`` mapped requests, each waited for in the triggerer with
``cancel_on_kill=True``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_kling.operators.kling import KlingI2VOperator

IMAGE = str(Path(__file__).parent / "assets" / "product.png")
OUT_DIR = os.environ.get("KLING_EXAMPLE_OUT", "out")
COMMON = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "tags": ["kling", "e2e"],
}

with DAG(dag_id="kling_e2e_worker_kill", **COMMON):
    KlingI2VOperator(
        task_id="render",
        first_frame=IMAGE,
        prompt="A worker dies under this task; its retry must not pay again.",
        wait_for_completion=True,
        deferrable=False,
        poll_interval=2,
        download_to=f"{OUT_DIR}/worker_kill",
        retries=3,
        retry_delay=timedelta(seconds=2),
    )

with DAG(
    dag_id="kling_e2e_reassign",
    params={"count": Param(10, type="integer", minimum=1, maximum=400)},
    **COMMON,
):

    @task
    def prompts() -> list[str]:
        count = int(get_current_context()["params"]["count"])
        return [f"A triggerer dies while take {i} waits." for i in range(count)]

    KlingI2VOperator.partial(
        task_id="render",
        first_frame=IMAGE,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=3,
        cancel_on_kill=True,
        retries=2,
        retry_delay=timedelta(seconds=5),
    ).expand(prompt=prompts())
