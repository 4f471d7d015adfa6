"""Apache Airflow provider for Kling image-to-video on GMI Cloud's request-queue API."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
