"""The deployment benchmark's DAG: N mapped tasks, each deferred straight to a triggerer.

``KLING_SCALE_IDS`` names the JSON list of request ids ``bench/deployment.py`` submitted;
``KLING_SCALE_N`` how many tasks to map (one per request); ``KLING_SCALE_END`` the waits'
deadline (Unix time), fixed by the benchmark so that every parse yields the same DAG.
"""

from __future__ import annotations

import os
from typing import Any

import pendulum
from airflow.sdk import DAG, BaseOperator
from airflow.triggers.base import StartTriggerArgs

N = int(os.environ.get("KLING_SCALE_N", "0"))


class ScaleWait(BaseOperator):
    """Never runs on a worker: the scheduler hands it to a triggerer, whose trigger ends it."""

    start_from_trigger = True
    start_trigger_args = StartTriggerArgs(
        trigger_cls="_scale_trigger.ScaleTrigger",
        trigger_kwargs={
            "ids_file": os.environ.get("KLING_SCALE_IDS", ""),
            "end_time": float(os.environ.get("KLING_SCALE_END", "0")),
        },
        next_method="execute_complete",
        timeout=None,
    )

    def __init__(self, *, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.index = index

    def execute(self, context: Any) -> None:  # pragma: no cover - the trigger ends the task
        raise RuntimeError("ScaleWait runs in a triggerer only")

    def execute_complete(self, context: Any, event: Any = None) -> Any:  # pragma: no cover
        return event


with DAG(
    dag_id="kling_scale",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["kling", "bench"],
):
    ScaleWait.partial(task_id="wait").expand(index=list(range(N)))
