"""
DAGs only the end-to-end tests run: one request, waited for on each path a wait can take.

``kling_e2e_paths``: ``in_triggerer`` is a deferrable sensor as users get it on Airflow 3.3
(started and ended in the triggerer, with a retry); ``on_worker`` the same sensor kept on the
worker path (``start_from_trigger=False``); ``with_download`` one that also stores the video
(a worker's part); ``render`` an operator that waits for its own video.
``kling_e2e_paths_retry``: the submit and ``in_triggerer`` alone, for a request that fails.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor

IMAGE = str(Path(__file__).parent / "assets" / "product.png")
OUT_DIR = os.environ.get("KLING_EXAMPLE_OUT", "out")

COMMON = {
    "schedule": None,
    "start_date": pendulum.datetime(2026, 1, 1, tz="UTC"),
    "catchup": False,
    "tags": ["kling", "e2e"],
}


def submit_and_wait() -> KlingI2VOperator:
    submit = KlingI2VOperator(task_id="submit", first_frame=IMAGE, prompt="One request, two ways to wait.")
    KlingStatusSensor(
        task_id="in_triggerer",
        request_id=submit.output,
        deferrable=True,
        poke_interval=2,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
    return submit


with DAG(dag_id="kling_e2e_paths_retry", **COMMON):
    submit_and_wait()

with DAG(dag_id="kling_e2e_paths", **COMMON):
    submit = submit_and_wait()
    KlingStatusSensor(
        task_id="on_worker",
        request_id=submit.output,
        deferrable=True,
        poke_interval=2,
        start_from_trigger=False,
    )
    KlingStatusSensor(
        task_id="with_download",
        request_id=submit.output,
        deferrable=True,
        poke_interval=2,
        download_to=f"{OUT_DIR}/paths",
        download_filename="{request_id}.mp4",
    )
    KlingI2VOperator(
        task_id="render",
        first_frame=IMAGE,
        prompt="An operator that waits for its own video.",
        wait_for_completion=True,
        deferrable=True,
        poll_interval=2,
    )
