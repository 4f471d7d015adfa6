"""
A folder of images in, a folder of videos out, each video named after its image.

list_images -> budget -> submit[n] -> wait[n] (deferrable) -> download[n]

``red_shoe.jpg`` becomes ``<KLING_FOLDER_OUT>/red_shoe.mp4``. Settings (environment
variables): ``KLING_FOLDER_IMAGES``, the folder of JPEG and PNG images (default the bundled
one); ``KLING_FOLDER_OUT``, where the videos go (default ``out/videos``); both may be a URI
such as ``s3://bucket/products/``. Walked through in docs/howto-folder.rst.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, ObjectStoragePath, task

from airflow_provider_kling.operators.budget import KlingBudgetOperator
from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor

IMAGES = os.environ.get("KLING_FOLDER_IMAGES", str(Path(__file__).parent / "assets"))
OUT = os.environ.get("KLING_FOLDER_OUT", "out/videos")
PROMPT = "A slow turntable spin of the product on a clean studio background."
SETTINGS = {"resolution": "720p", "duration": 5}  # $0.56 a video

with DAG(
    dag_id="kling_folder_to_videos",
    description="Every image in a folder becomes a video of the same name in another folder",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["kling", "example"],
):

    @task
    def list_images(location: str) -> list[str]:
        """Every JPEG or PNG directly in the folder (or under the bucket prefix), in name order."""
        root: Any = ObjectStoragePath(location) if "://" in location else Path(location)
        return sorted(str(p) for p in root.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))

    # 1. The whole batch is priced first: over $10, nothing is submitted.
    budget = KlingBudgetOperator(
        task_id="budget", requests=list_images(IMAGES), defaults=SETTINGS, max_total_usd=10.0
    )

    # 2. One paid submit per image; each records its image's name for the download.
    submit = KlingI2VOperator.partial(task_id="submit", prompt=PROMPT, retries=2, **SETTINGS).expand(
        first_frame=budget.output
    )

    # 3. Each wait runs in the triggerer: a hundred waiting videos hold no worker slot.
    wait = KlingStatusSensor.partial(task_id="wait", deferrable=True, poke_interval=10, timeout=3600).expand(
        request_id=submit.output
    )

    # 4. One download per video, named after its source image: red_shoe.jpg -> red_shoe.mp4.
    KlingDownloadVideoOperator.partial(
        task_id="download", download_to=OUT, download_filename="{image}.mp4", retries=3
    ).expand(request_id=wait.output)
