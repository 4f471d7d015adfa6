"""
Animate a batch of images: one Kling request per image, mapped with ``.expand()``.

make_images -> budget -> submit[count] -> wait[count] (deferrable) -> report

``make_images`` writes ``count`` distinct variations of the bundled product shot (the run
parameter ``count``: 20 unless the run's config says otherwise, up to 800) into a work folder
at run time (``KLING_BATCH_WORKDIR``, default the system temp folder); in real use it would
list your images instead. Each mapped ``submit`` retries GMI's 429 answers on its own, and a
retried task reuses its earlier request rather than paying twice. ``budget`` prices the
whole batch first and fails, with nothing submitted, if it would cost more than the run
parameter ``max_total_usd`` (``BUDGET_USD`` unless the run's config says otherwise).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, get_current_context, task

from airflow_provider_kling.operators.budget import KlingBudgetOperator
from airflow_provider_kling.operators.kling import KlingI2VOperator
from airflow_provider_kling.sensors.kling import KlingStatusSensor

SOURCE = Path(__file__).parent / "assets" / "product.png"
COUNT = 20
# 20 clips of 5 s at 720p are estimated at $11.20; a batch over this cap is never submitted.
BUDGET_USD = 15.0

with DAG(
    dag_id="kling_batch",
    description="Animate 20 images with Kling 3.0 Turbo, one mapped task per image",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["kling", "example"],
    params={
        "count": Param(COUNT, type="integer", minimum=1, maximum=800, description="How many images"),
        "max_total_usd": Param(BUDGET_USD, type="number", minimum=0, description="Cap on the batch's cost"),
    },
):

    @task
    def make_images() -> list[str]:
        """Write ``count`` distinct images (cropped and mirrored variations) into a per-run folder."""
        context = get_current_context()
        run_id, count = context["run_id"], int(context["params"]["count"])
        safe_run = "".join(c if c.isalnum() else "_" for c in run_id)
        folder = Path(os.environ.get("KLING_BATCH_WORKDIR", tempfile.gettempdir())) / safe_run
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(count):
            path = folder / f"product_{i:02d}.png"
            try:
                from PIL import Image, ImageOps
            except ImportError:  # Pillow is optional: identical copies are fine for the API
                shutil.copyfile(SOURCE, path)
            else:
                with Image.open(SOURCE) as image:
                    width, height = image.size
                    # A crop window shifted by a pixel or a row per image: 800 distinct frames.
                    left, top = i % 20, i // 20 % 20
                    variant = image.crop((left, top, width - 20 + left, height - 20 + top))
                    if i >= count // 2:
                        variant = ImageOps.mirror(variant)
                    variant.save(path)
            paths.append(str(path))
        return paths

    # The submits map over the budget's output, so none starts unless the whole batch passed.
    budget = KlingBudgetOperator(
        task_id="budget",
        requests=make_images(),
        defaults={"resolution": "720p", "duration": 5},
        max_total_usd="{{ params.max_total_usd }}",
    )

    # Retries are safe here: a sensor only reads, and a retried submit finds the request
    # its first try made (Airflow 3.3's task state store) instead of paying again. They
    # also absorb a scheduler hiccup: under load Airflow 3.3 can fail a task that finished
    # before it left "queued" ("finished with state success, but ... is queued").
    submit = KlingI2VOperator.partial(
        task_id="submit",
        retries=2,
        retry_delay=timedelta(seconds=5),
        prompt="A slow turntable spin of the product on a clean studio background.",
        resolution="720p",
        duration=5,
    ).expand(first_frame=budget.output)

    wait = KlingStatusSensor.partial(
        task_id="wait",
        retries=2,
        retry_delay=timedelta(seconds=5),
        deferrable=True,
        poke_interval=5,
        timeout=1800,
    ).expand(request_id=submit.output)

    @task
    def report(results: list[dict[str, Any]]) -> int:
        for result in results:
            print(f"{result['request_id']}: {result['media_urls'][0]}")
        return len(results)

    report(wait.output)
