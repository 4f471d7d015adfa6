"""
A submit-and-wait task that defers and resumes in a new operator object: its result and asset
event must carry the price its cost cap was checked against, for a duration given as 5.0.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Asset

from airflow_provider_kling.operators.submit import KlingSubmitOperator

with DAG(
    dag_id="kling_deferred_price",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    KlingSubmitOperator(
        task_id="generate",
        model="kling-3.0-turbo-i2v",
        payload={"first_frame": "https://example.com/frame.png", "duration": 5.0},
        max_cost_usd=0.56,
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.5,
        timeout=120,
        outlets=[Asset("kling://videos/priced")],
    )
