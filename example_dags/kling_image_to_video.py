"""
Turn one product image into a 5-second video with Kling 3.0 Turbo.

submit -> wait (deferrable: the wait runs in the triggerer, not a worker slot) -> download.

Set the ``kling_default`` connection (API key in the password field) and, optionally:
``KLING_EXAMPLE_IMAGE`` (an image path or URL; default: the bundled product shot) and
``KLING_EXAMPLE_OUT`` (where the video goes; default ``out/``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pendulum
from airflow.sdk import DAG

from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor

IMAGE = os.environ.get("KLING_EXAMPLE_IMAGE", str(Path(__file__).parent / "assets" / "product.png"))
OUT_DIR = os.environ.get("KLING_EXAMPLE_OUT", "out")

with DAG(
    dag_id="kling_image_to_video",
    description="Animate a product image into a short clip with Kling 3.0 Turbo",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["kling", "example"],
):
    submit = KlingI2VOperator(
        task_id="submit",
        first_frame=IMAGE,
        prompt="Slow dolly-in on the mug as steam rises; warm evening light.",
        resolution="720p",
        duration=5,
    )

    wait = KlingStatusSensor(
        task_id="wait",
        request_id=submit.output,
        deferrable=True,
        poke_interval=5,
        timeout=1800,
    )

    # GMI's video URLs have no documented retention: copy the video out as soon as it exists.
    KlingDownloadVideoOperator(
        task_id="download",
        request_id=wait.output,
        download_to=OUT_DIR,
        download_filename="{request_id}.mp4",
    )
