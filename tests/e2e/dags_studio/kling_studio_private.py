"""A Kling DAG in the ``studio`` team's bundle: the e2e viewer (another team) may not read it."""

from __future__ import annotations

from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_kling.operators.kling import KlingI2VOperator

IMAGE = Path(__file__).parents[3] / "example_dags" / "assets" / "product.png"

with DAG(
    dag_id="kling_studio_private",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["kling", "e2e"],
):
    KlingI2VOperator(task_id="submit", first_frame=str(IMAGE), prompt="A private teaser", duration=3)
