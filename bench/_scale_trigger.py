"""The trigger of the deployment benchmark (``bench/deployment.py``): the provider's wait, at scale.

Thousands of tasks deferred through workers would measure the workers. Here the scheduler defers
each mapped task straight to a triggerer (``start_from_trigger``), the trigger waits for its
request exactly as :class:`~airflow_provider_kling.triggers.kling.KlingStatusTrigger` does (it is
one), and it ends its task itself, so the figures are the triggerers' own.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from airflow_provider_kling.triggers.kling import KlingStatusTrigger


@functools.cache
def request_ids(path: str) -> list[str]:
    """The requests the benchmark submitted, one per map index."""
    return list(json.loads(Path(path).read_text()))


class ScaleTrigger(KlingStatusTrigger):
    """Waits for the request of its task's map index (all mapped tasks share these kwargs)."""

    def __init__(self, ids_file: str, end_time: float, submitted_at: float | None = None) -> None:
        super().__init__(request_id="", end_time=end_time, submitted_at=submitted_at)
        self.ids_file = ids_file

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {"ids_file": self.ids_file, "end_time": self.end_time, "submitted_at": self.submitted_at}
        return ("_scale_trigger.ScaleTrigger", kwargs)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        ti = self.task_instance
        if ti is None:
            raise RuntimeError("ScaleTrigger waits for a mapped task; run it from a deferred task")
        self.state = dataclasses.replace(self.state, request_id=request_ids(self.ids_file)[ti.map_index])
        async for event in super().run():
            payload = event.payload
            ok = payload.get("status") == "success"
            yield (TaskSuccessEvent if ok else TaskFailedEvent)(xcoms={"return_value": payload})
