"""
Nightly product videos: every image in a folder or bucket becomes a short clip in storage.

list_images -> submit[n] -> wait[n] (deferrable) -> download[n] -> Asset "kling://videos/product"

Each image gets one mapped task of each kind (``.expand()``). Two limits keep the batch
inside the account's rate limit: every ``submit`` runs in the ``kling`` pool (create it
with ``airflow pools set kling 4 "Kling submits"``), and at most ``MAX_PARALLEL`` submits
of this DAG run at once (``max_active_tis_per_dag``). Waiting costs no slot: the sensors
defer to the triggerer. Each download emits an event on the asset, with the request id,
model, prompt, duration, resolution, cost and written URIs as its extra; the DAG
``kling_on_new_video`` is scheduled on it.

Settings (environment variables): ``KLING_PIPELINE_IMAGES`` (a folder, or an object
storage URI such as ``s3://bucket/products/``; default the bundled images),
``KLING_PIPELINE_OUT`` (a folder or URI; default ``out/pipeline``), ``KLING_POOL``
(default ``kling``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, ObjectStoragePath, task

from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor

IMAGES = os.environ.get("KLING_PIPELINE_IMAGES", str(Path(__file__).parent / "assets"))
OUT = os.environ.get("KLING_PIPELINE_OUT", "out/pipeline")
POOL = os.environ.get("KLING_POOL", "kling")
MAX_PARALLEL = 4
PROMPT = "A slow turntable spin of the product on a clean studio background."
DURATION, RESOLUTION = "5", "720p"

#: What the downstream DAG is scheduled on; one event per video written.
PRODUCT_VIDEOS = Asset(name="kling_product_videos", uri="kling://videos/product")


def as_image(location: str) -> Any:
    """An image location as the operator reads it: a local path, or an ObjectStoragePath for a URI."""
    return ObjectStoragePath(location) if "://" in location else location


with DAG(
    dag_id="kling_product_pipeline",
    description="Animate every product image in a folder or bucket with Kling 3.0 Turbo",
    schedule=None,  # in production: "@daily" or a cron string
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["kling", "example"],
):

    @task
    def list_images(location: str) -> list[str]:
        """Every JPEG or PNG directly in the folder or under the bucket prefix, in name order."""
        root: Any = ObjectStoragePath(location) if "://" in location else Path(location)
        found = [p for p in root.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg")]
        return sorted(str(p) for p in found)

    # XComArg.map runs as_image in each mapped task: only the strings go through XCom.
    images = list_images(IMAGES).map(as_image)

    submit = KlingI2VOperator.partial(
        task_id="submit",
        prompt=PROMPT,
        resolution=RESOLUTION,
        duration=DURATION,
        max_cost_usd=1.0,  # 5 s at 720p is $0.56; anything dearer is a mistake
        pool=POOL,
        max_active_tis_per_dag=MAX_PARALLEL,
        retries=2,
    ).expand(first_frame=images)

    # Without poke_interval the wait follows the default polling schedule (first check 25 s after
    # the submit, then ~9.5 s): half the API calls of 5 s polling. 10 s keeps the demo quick.
    wait = KlingStatusSensor.partial(task_id="wait", deferrable=True, poke_interval=10, timeout=3600).expand(
        request_id=submit.output
    )

    KlingDownloadVideoOperator.partial(
        task_id="download",
        download_to=OUT,
        request_info={"prompt": PROMPT, "duration": DURATION, "resolution": RESOLUTION},
        outlets=[PRODUCT_VIDEOS],
        retries=3,
    ).expand(request_id=wait.output)
