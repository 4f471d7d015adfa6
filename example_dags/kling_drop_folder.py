"""
Videos from a drop folder: each new image in a folder or bucket becomes a video, with no polling DAG.

AssetWatcher(NewImagesTrigger) on the asset ``kling_drop_folder`` runs this DAG as images arrive:

new_images -> submit[n] -> wait[n] (deferrable) -> download[n] -> link[n] -> Asset "kling://videos/drop"

The triggerer watches the folder and announces each complete new image once; images that
arrive together share an event and a run, one mapped task of each kind per image. Each video is written to
the output folder as ``<image name>_<request id>.mp4``, and each ``link`` task records the
image -> video link in the extra of its event on ``kling://videos/drop``.

Settings (environment variables, read when the DAG is parsed): ``KLING_DROP_FOLDER`` (a folder,
or a URI such as ``s3://bucket/incoming/``; default ``incoming/``), ``KLING_DROP_CONN_ID`` (the
object store's connection, if it needs one), ``KLING_DROP_OUT`` (a folder or URI; default
``out/drop`` under ``KLING_EXAMPLE_OUT``), ``KLING_DROP_POLL_SECONDS`` (default 10).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import PurePosixPath
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_kling.operators.download import KlingDownloadVideoOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor
from airflow_provider_kling.triggers.storage import NewImagesTrigger, announced_image

FOLDER = os.environ.get("KLING_DROP_FOLDER", "incoming")
CONN_ID = os.environ.get("KLING_DROP_CONN_ID") or None
OUT = os.environ.get("KLING_DROP_OUT", os.path.join(os.environ.get("KLING_EXAMPLE_OUT", "out"), "drop"))
POLL_SECONDS = float(os.environ.get("KLING_DROP_POLL_SECONDS", "10"))
PROMPT = "A slow turntable spin of the product on a clean studio background."

# A local folder is watched by its absolute path: the triggerer may run in another directory.
WATCHED = FOLDER if "://" in FOLDER else f"file://{os.path.abspath(os.path.expanduser(FOLDER))}"

NEW_IMAGES = Asset(
    name="kling_drop_folder",
    uri=WATCHED,
    watchers=[
        AssetWatcher(
            name="kling_drop_folder_images",
            trigger=NewImagesTrigger(path=WATCHED, conn_id=CONN_ID, poll_interval=POLL_SECONDS),
        )
    ],
)
#: One event per video; its extra links the image to the video.
DROP_VIDEOS = Asset(name="kling_drop_videos", uri="kling://videos/drop")


def image_location(image: dict[str, Any]) -> Any:
    """The announced image, as the operator reads it: a local one only from inside its folder."""
    return announced_image(image, conn_id=CONN_ID)


def download_arguments(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
    """The download of one image's video, named after the image."""
    result, image = pair
    stem = PurePosixPath(image["name"]).stem
    return {"request_id": result, "filename": stem + "_{request_id}.mp4"}


with DAG(
    dag_id="kling_drop_folder",
    description="Turn each new image in a drop folder into a video with Kling 3.0 Turbo",
    schedule=[NEW_IMAGES],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    # Retries are safe in every task: a sensor only reads, a retried submit finds the request its
    # first try made, a download rewrites the same file. They also absorb a scheduler hiccup:
    # under load Airflow 3.3 can fail a task that finished before it left "running".
    default_args={"retries": 2, "retry_delay": timedelta(seconds=5)},
    tags=["kling", "example"],
):

    @task
    def new_images(triggering_asset_events: Any = None) -> list[dict[str, Any]]:
        """The images the triggering events announced (each event lists the images one poll found)."""
        try:
            events = triggering_asset_events[NEW_IMAGES] if triggering_asset_events else []
        except KeyError:  # a manual run has no triggering events: nothing to do
            events = []
        images: dict[tuple[str, Any], dict[str, Any]] = {}
        for event in events:
            payload = (event.extra or {}).get("payload") or {}
            for image in payload.get("images") or []:
                images[(image["uri"], image.get("etag") or image.get("mtime"))] = image
        for image in images.values():
            print(f"New image {image['uri']}: {image.get('image')}")
        return list(images.values())

    images = new_images()

    submit = KlingI2VOperator.partial(
        task_id="submit", prompt=PROMPT, resolution="720p", duration=5, max_cost_usd=1.0
    ).expand(first_frame=images.map(image_location))

    wait = KlingStatusSensor.partial(task_id="wait", deferrable=True, poke_interval=5, timeout=3600).expand(
        request_id=submit.output
    )

    download = KlingDownloadVideoOperator.partial(task_id="download", download_to=OUT).expand_kwargs(
        wait.output.zip(images).map(download_arguments)
    )

    @task(outlets=[DROP_VIDEOS])
    def link(pair: tuple[dict[str, Any], dict[str, Any]], outlet_events: Any = None) -> dict[str, Any]:
        """Record which image made which video, on the event of ``kling://videos/drop``."""
        written, image = pair
        extra = {
            "image": image["uri"],
            "image_etag": image.get("etag"),
            "image_mtime": image.get("mtime"),
            "request_id": written["request_id"],
            "videos": written["uris"],
        }
        outlet_events[DROP_VIDEOS].extra = extra
        print(f"{image['uri']} -> {', '.join(written['uris'])}")
        return extra

    link.expand(pair=download.output.zip(images))
