"""The deployment benchmark's other DAG: the same N waits, as users get them.

A mapped deferrable :class:`~airflow_provider_kling.sensors.kling.KlingStatusSensor` over an
upstream task's list of request ids: the upstream runs once on a worker; on Airflow 3.3 every
sensor then starts in a triggerer (``start_from_trigger``), reads its request id there from the
upstream's XCom with its map index, waits and ends its task, with no worker.

``KLING_SENSOR_IDS`` names the JSON list of request ids ``bench/deployment.py`` submitted for
this run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_kling.sensors.kling import KlingStatusSensor

IDS = os.environ.get("KLING_SENSOR_IDS", "")
TIMEOUT = 3 * 3600.0


@task
def request_ids() -> list[str]:
    """The requests to wait for, one per map index (as a submit task would return them)."""
    return list(json.loads(Path(IDS).read_text()))


with DAG(
    dag_id="kling_scale_sensor",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["kling", "bench"],
):
    KlingStatusSensor.partial(task_id="wait", deferrable=True, timeout=TIMEOUT).expand(
        request_id=request_ids()
    )
