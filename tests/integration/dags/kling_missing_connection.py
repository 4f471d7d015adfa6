"""A task naming a connection nobody created: its first error must say how to create it."""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingI2VOperator

with DAG(
    dag_id="kling_missing_connection",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
):
    KlingI2VOperator(
        task_id="submit", first_frame="https://example.com/frame.png", kling_conn_id="kling_prod"
    )
