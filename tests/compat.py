"""Names the tests need that moved between Airflow 3.1 (the floor) and 3.3."""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred
except ImportError:  # Airflow < 3.2
    from airflow.exceptions import AirflowSkipException, TaskDeferred  # type: ignore[no-redef]

__all__ = ["AirflowSkipException", "TaskDeferred"]
