"""What DAG parsing pays for: importing the operator and sensor must stay cheap."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import airflow_provider_kling

PACKAGE = Path(airflow_provider_kling.__file__).parent
HEAVY = ("requests", "httpx", "tenacity", "urllib3")


def test_parsing_a_dag_imports_no_http_client():
    """A fresh interpreter: whatever airflow.sdk loads is not ours to count."""
    code = (
        "import sys, json, airflow.sdk\n"
        "before = set(sys.modules)\n"
        "import airflow_provider_kling.operators.kling, airflow_provider_kling.sensors.kling\n"
        "import airflow_provider_kling.operators.download\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added = json.loads(out.stdout.strip().splitlines()[-1])
    assert [m for m in added if m.split(".")[0] in HEAVY] == []


def top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:  # module level only: imports inside functions run at execute time
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_modules_a_dag_file_loads_import_no_http_client_at_module_level():
    for name in (
        "operators/kling.py",
        "operators/submit.py",
        "operators/download.py",
        "tasks/outputs.py",
        "sensors/kling.py",
        "links/kling.py",
        "api/__init__.py",
        "tasks/results.py",
        "tasks/__init__.py",
        "tasks/mixin.py",
        "tasks/submit_once.py",
        "exceptions.py",
        "hooks/kling.py",
        "triggers/kling.py",
    ):
        assert top_level_imports(PACKAGE / name).isdisjoint({"requests", "httpx"}), name


def test_api_module_knows_nothing_of_airflow():
    for path in (PACKAGE / "api").glob("*.py"):
        assert "airflow" not in top_level_imports(path), path
    assert "airflow" not in top_level_imports(PACKAGE / "transport" / "retries.py")


def test_the_ui_plugin_adds_nothing_to_dag_parsing():
    """Every process loads plugins, the DAG processor too: outside the api-server ours is two modules."""
    code = (
        "import sys, json, airflow.sdk, airflow.plugins_manager\n"
        "before = set(sys.modules)\n"
        "from airflow_provider_kling.plugins.kling import KlingVideosPlugin\n"
        "assert KlingVideosPlugin.fastapi_apps == [] and KlingVideosPlugin.external_views == []\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n"
    )
    argv0 = "import sys; sys.argv = ['airflow', 'dag-processor']\n"
    out = subprocess.run([sys.executable, "-c", argv0 + code], capture_output=True, text=True, check=True)
    added = json.loads(out.stdout.strip().splitlines()[-1])
    plugin = "airflow_provider_kling.plugins.kling"
    assert plugin in added
    # Not the app, its queries, FastAPI or an HTTP client: the package and the plugin module only.
    assert set(added) <= {"airflow_provider_kling", "airflow_provider_kling.plugins", plugin}
