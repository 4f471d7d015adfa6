"""The plugin: the view's app (in the api-server only) and where the UI shows it.

Every Airflow process loads plugins, the DAG processor included, so this module imports nothing
but Airflow's plugin base: the app, FastAPI and the queries load only in the api-server.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import urlparse

from airflow.plugins_manager import AirflowPlugin

#: Where the api-server mounts the view's app.
URL_PREFIX = "/kling"


def running_in_api_server(argv: list[str] | None = None) -> bool:
    """Whether this process is ``airflow api-server`` (upstream's edge3 plugin decides the same way)."""
    args = sys.argv if argv is None else argv
    return len(args) > 1 and args[1] == "api-server"


def ui_path(path: str) -> str:
    """``path`` under the path part of ``[api] base_url``, for a UI served below a prefix."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="/") or "/"
    prefix = urlparse(base).path if base.startswith(("http://", "https://")) else base
    return prefix.rstrip("/") + path


def view_href(**params: str) -> str:
    """The view's address, with the UI's ``{DAG_ID}``-style placeholders left for it to fill."""
    query = "&".join(f"{name}={value}" for name, value in params.items())
    return ui_path(f"{URL_PREFIX}/") + (f"?{query}" if query else "")


def views() -> list[dict[str, Any]]:
    """A page in Browse, and a tab on each DAG, DAG run, task and task instance filtered to it."""
    views: list[dict[str, Any]] = [
        {
            "name": "Kling videos",
            "href": view_href(),
            "destination": "nav",
            "category": "browse",
            "url_route": "kling-videos",
        }
    ]
    scopes: dict[str, dict[str, str]] = {
        "dag": {"dag_id": "{DAG_ID}"},
        "dag_run": {"dag_id": "{DAG_ID}", "run_id": "{RUN_ID}"},
        "task": {"dag_id": "{DAG_ID}", "task_id": "{TASK_ID}"},
        "task_instance": {
            "dag_id": "{DAG_ID}",
            "run_id": "{RUN_ID}",
            "task_id": "{TASK_ID}",
            "map_index": "{MAP_INDEX}",
        },
    }
    for destination, params in scopes.items():
        views.append(
            {
                "name": "Kling videos",
                "href": view_href(**params),
                "destination": destination,
                "url_route": f"kling-videos-{destination.replace('_', '-')}",
            }
        )
    return views


def fastapi_app() -> dict[str, Any]:
    from airflow_provider_kling.plugins.app import create_app

    return {"app": create_app(), "url_prefix": URL_PREFIX, "name": "Kling videos"}


class KlingVideosPlugin(AirflowPlugin):
    """Every video the Kling tasks made, its status and its cost, in the Airflow UI (Airflow 3.1+)."""

    name = "kling_videos"
    if running_in_api_server():
        fastapi_apps = [fastapi_app()]
        external_views = views()


__all__ = ["URL_PREFIX", "KlingVideosPlugin", "running_in_api_server", "view_href", "views"]
