"""Names the tests need that moved between Airflow 3.1 (the floor) and 3.3."""

from __future__ import annotations

try:
    from airflow.sdk.exceptions import AirflowSkipException, TaskDeferred
except ImportError:  # Airflow < 3.2
    from airflow.exceptions import AirflowSkipException, TaskDeferred  # type: ignore[no-redef]

from airflow import __version__ as _airflow_version
from packaging.version import Version

#: Whether this is Airflow 3.2 or newer: some of the CLI's behaviour a test checks changed there.
AIRFLOW_V_3_2_PLUS = Version(Version(_airflow_version).base_version) >= Version("3.2.0")
#: Whether this is Airflow 3.3 or newer: tasks start and end in the triggerer.
AIRFLOW_V_3_3_PLUS = Version(Version(_airflow_version).base_version) >= Version("3.3.0")

__all__ = ["AIRFLOW_V_3_2_PLUS", "AIRFLOW_V_3_3_PLUS", "AirflowSkipException", "TaskDeferred"]
