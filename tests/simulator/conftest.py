"""Fixtures shared by the simulator's own tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_kling.testing import KlingSimulator, ManualClock


@pytest.fixture
def manual() -> Iterator[tuple[KlingSimulator, ManualClock]]:
    """A simulator whose clock only moves when the test says: 10 s queued, then 20 s processing."""
    clock = ManualClock()
    with KlingSimulator(queued_seconds=10, processing_seconds=20, clock=clock) as simulator:
        yield simulator, clock
