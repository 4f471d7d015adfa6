"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``)."""

from __future__ import annotations

from typing import Any

from airflow_provider_kling import __version__

# One definition of the connection form, used both here (Airflow >= 3.2 reads it without
# importing the hook) and by KlingHook's legacy form methods (Airflow 3.1), so they agree.
# Port stays visible: Airflow 3.3.2's Test button works only for a connection that stores
# one (apache/airflow#73298); 443 changes nothing else. Airflow's form has no help text for a
# standard field, so the label says it; a bare "443" placeholder looked like a saved value.
HIDDEN_FIELDS = ["schema", "login", "extra"]
PORT_LABEL = "Port (optional; 443 lets the Test button work)"
RELABELING = {"host": "Base URL", "password": "API key", "port": PORT_LABEL}
PLACEHOLDERS = {
    "host": "https://console.gmicloud.ai",
    "password": "GMI Cloud API key",
    "port": "empty, or e.g. 443",
    "organization_id": "only for multi-organization accounts",
    "timeout": "30",
}
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "organization_id": {
        "label": "Organization ID",
        "description": "Sent as the X-Organization-ID header; only for keys that span organizations.",
        "schema": {"type": ["string", "null"]},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "How long to wait for one HTTP answer from GMI Cloud. Default 30.",
        "schema": {"type": ["number", "null"], "minimum": 1, "maximum": 3600},
    },
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-kling",
        "name": "Kling (GMI Cloud)",
        "description": "Turn images into videos with Kling 3.0 Turbo on GMI Cloud's request-queue API.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Kling (GMI Cloud)",
                "external-doc-url": "https://docs.gmicloud.ai/",
                "tags": ["software"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Kling (GMI Cloud)",
                "python-modules": ["airflow_provider_kling.hooks.kling"],
            }
        ],
        "operators": [
            {
                "integration-name": "Kling (GMI Cloud)",
                "python-modules": [
                    "airflow_provider_kling.operators.kling",
                    "airflow_provider_kling.operators.submit",
                    "airflow_provider_kling.operators.download",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Kling (GMI Cloud)",
                "python-modules": ["airflow_provider_kling.sensors.kling"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Kling (GMI Cloud)",
                "python-modules": [
                    "airflow_provider_kling.triggers.kling",
                    "airflow_provider_kling.triggers.storage",
                ],
            }
        ],
        "extra-links": [
            "airflow_provider_kling.links.kling.KlingVideoLink",
            "airflow_provider_kling.links.kling.KlingRequestLink",
        ],
        "connection-types": [
            {
                "connection-type": "kling",
                "hook-class-name": "airflow_provider_kling.hooks.kling.KlingHook",
                "hook-name": "Kling (GMI Cloud)",
                "ui-field-behaviour": {
                    "hidden-fields": HIDDEN_FIELDS,
                    "relabeling": RELABELING,
                    "placeholders": PLACEHOLDERS,
                },
                "conn-fields": CONN_FIELDS,
            }
        ],
    }
