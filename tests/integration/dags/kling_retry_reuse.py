"""
A submit-and-wait task whose first try fails while waiting (the test scripts the
simulator to refuse a poll); Airflow retries it. The retry must wait for the same
request instead of paying for a new one.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingI2VOperator

with DAG(
    dag_id="kling_retry_reuse",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    KlingI2VOperator(
        task_id="generate",
        first_frame="https://example.com/frame.png",
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.5,
        timeout=120,
        retries=2,
        retry_delay=timedelta(seconds=0),
    )
