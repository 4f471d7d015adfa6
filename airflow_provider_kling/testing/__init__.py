"""Offline testing tools: a local GMI request-queue simulator and pytest fixtures around it.

See :class:`KlingSimulator` and :mod:`airflow_provider_kling.testing.pytest_plugin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_kling.testing.config import SimulatorConfig
from airflow_provider_kling.testing.faults import ROUTE_KEYS, Fault
from airflow_provider_kling.testing.state import ManualClock, SimulatorState, SubmittedRequest

if TYPE_CHECKING:
    from airflow_provider_kling.testing.app import create_app
    from airflow_provider_kling.testing.simulator import KlingSimulator

__all__ = [
    "ROUTE_KEYS",
    "Fault",
    "KlingSimulator",
    "ManualClock",
    "SimulatorConfig",
    "SimulatorState",
    "SubmittedRequest",
    "create_app",
]


def __getattr__(name: str) -> Any:
    # Lazy, so `python -m airflow_provider_kling.testing.simulator` does not import its own module twice
    # and importing the pytest plugin does not pull in uvicorn and Starlette.
    if name == "KlingSimulator":
        from airflow_provider_kling.testing.simulator import KlingSimulator

        return KlingSimulator
    if name == "create_app":
        from airflow_provider_kling.testing.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
