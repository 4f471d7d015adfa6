"""
Runs whenever ``kling_product_pipeline`` writes a new product video.

Scheduled on the asset ``kling://videos/product``: each run sees the events that triggered
it, and each event's extra says which request made the video, with what prompt, at what
cost, and where it was written.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, task

PRODUCT_VIDEOS = Asset(name="kling_product_videos", uri="kling://videos/product")

with DAG(
    dag_id="kling_on_new_video",
    description="Publish product videos as Kling writes them",
    schedule=[PRODUCT_VIDEOS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["kling", "example"],
):

    @task
    def publish(triggering_asset_events: Any = None) -> list[str]:
        """Stand-in for a publish step (a CMS upload, a catalogue update): list the new videos."""
        uris: list[str] = []
        try:
            events = triggering_asset_events[PRODUCT_VIDEOS] if triggering_asset_events else []
        except KeyError:  # a manual run (or `airflow dags test`) has no triggering events
            events = []
        for event in events:
            extra = event.extra or {}
            print(
                f"New video from request {extra.get('request_id')} ({extra.get('model')}, "
                f"{extra.get('duration')} s at {extra.get('resolution')}, "
                f"${extra.get('estimated_cost_usd')}): "
                f"{extra.get('uris')}"
            )
            uris.extend(extra.get("uris") or [])
        return uris

    publish()
