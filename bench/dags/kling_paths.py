"""The paths benchmark's DAGs: each Kling wait on the path it takes now, and on the one it took before.

``bench/paths.py`` runs them in one Celery deployment and counts what each costs the workers.

- ``kling_paths_flagship_new`` / ``_old``: the flagship pipeline, mapped
  ``submit -> wait (KlingStatusSensor, deferrable) -> download``, ``KLING_PATHS_BATCH`` videos.
- ``kling_paths_operator_new`` / ``_old``: ``KlingI2VOperator(wait_for_completion=True,
  deferrable=True)`` mapped over ``KLING_PATHS_EACH`` images.

``_new`` uses the provider as users get it; ``_old`` uses the subclasses below, which keep
every wait on the path it took before waits could start and end in the triggerer.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG

from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor

IMAGE = str(Path(__file__).resolve().parents[2] / "example_dags" / "assets" / "product.png")
BATCH = int(os.environ.get("KLING_PATHS_BATCH", "0"))
EACH = int(os.environ.get("KLING_PATHS_EACH", "0"))
OUT = os.environ.get("KLING_EXAMPLE_OUT", "out")
PROMPT = "A slow turntable spin of the product on a clean studio background."


class WorkerPathSensor(KlingStatusSensor):
    """The sensor before: started on a worker, which defers it, and resumed on another to end."""

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        return super().partial(start_from_trigger=False, **kwargs)

    def ends_in_triggerer(self) -> bool:
        return False


class WorkerPathI2V(KlingI2VOperator):
    """The operator's own wait before: it resumes on a worker to end."""

    def ends_in_triggerer(self) -> bool:
        return False


def dag(dag_id: str) -> DAG:
    return DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        # As the example DAGs: retries absorb a scheduler hiccup under load (a retry is one
        # more worker start, and counts as one).
        default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
        tags=["kling", "bench"],
    )


for path, sensor in (("new", KlingStatusSensor), ("old", WorkerPathSensor)):
    with dag(f"kling_paths_flagship_{path}"):
        submit = KlingI2VOperator.partial(task_id="submit", prompt=PROMPT, duration=5).expand(
            first_frame=[IMAGE] * BATCH
        )
        wait = sensor.partial(task_id="wait", deferrable=True, poke_interval=5, timeout=3600).expand(
            request_id=submit.output
        )
        KlingDownloadVideoOperator.partial(task_id="download", download_to=f"{OUT}/{path}").expand(
            request_id=wait.output
        )

for path, operator in (("new", KlingI2VOperator), ("old", WorkerPathI2V)):
    with dag(f"kling_paths_operator_{path}"):
        operator.partial(
            task_id="render",
            prompt=PROMPT,
            duration=5,
            wait_for_completion=True,
            deferrable=True,
            poll_interval=5,
            timeout=3600,
        ).expand(first_frame=[IMAGE] * EACH)
