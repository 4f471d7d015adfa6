"""The documented path of :class:`KlingTaskMixin`; the folder holds what every Kling task shares.

``mixin.py`` the hook, waiting, killing and finishing; ``submit_once.py`` one submit across
retries; ``results.py`` from an event to the task's result; ``outputs.py`` file names,
destinations and asset extras; ``ledger.py`` the entries the Kling videos view reads.
"""

from __future__ import annotations

from airflow_provider_kling.tasks.mixin import KlingTaskMixin

__all__ = ["KlingTaskMixin"]
