"""Sphinx configuration for the airflow-provider-kling documentation.

Built by ``make docs`` (part of ``make test``) with warnings as errors and no network:
no intersphinx, only Sphinx's built-in extensions, the furo theme, and myst-parser for the one
Markdown page (``performance.md``, written by ``make bench``).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

# autodoc imports the package; it is installed editable in .venv, and this keeps a plain
# checkout working too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# autodoc imports Airflow, which writes an airflow.cfg into AIRFLOW_HOME on first import.
# Unless one is set, keep that inside the build directory rather than in ~/airflow, and
# keep Airflow's INFO logging out of the build output.
_DOCS = Path(__file__).resolve().parent
os.environ.setdefault("AIRFLOW_HOME", str(_DOCS / "_build" / "airflow-home"))
os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
logging.getLogger("airflow").setLevel(logging.WARNING)

from airflow_provider_kling import __version__  # noqa: E402

project = "airflow-provider-kling"
author = "airflow-provider-kling developers"
copyright = "airflow-provider-kling developers"
release = __version__
version = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}

exclude_patterns = ["_build"]
root_doc = "index"
language = "en"

html_theme = "furo"
html_title = f"airflow-provider-kling {release}"
html_static_path: list[str] = []

# autodoc
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
# Type hints name Airflow, httpx, requests and tenacity classes that this offline build
# cannot link to (no intersphinx). The parameter descriptions in the docstrings already
# say what each argument is, so signatures stay free of unresolvable annotations.
autodoc_typehints = "none"
autodoc_class_signature = "mixed"
# Methods that only implement an Airflow interface (execute, poke, run, serialize) would
# otherwise repeat Airflow's generic docstrings ("Derive when creating an operator.").
autodoc_inherit_docstrings = False

# Every cross-reference inside this project must resolve (nitpicky), so a renamed class
# breaks the build. References to other projects cannot resolve in this offline build
# (no intersphinx), so those, and only those, are ignored.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(airflow|httpx|requests|tenacity|starlette|uvicorn|pendulum|pytest)(\..*)?"),
]


def _public_bases(app: object, name: str, obj: object, options: object, bases: list[type]) -> None:
    """Show a private base class (``_KlingHookBase``) as the public classes it extends."""
    expanded: list[type] = []
    for base in bases:
        expanded.extend(base.__bases__ if base.__name__.startswith("_") else [base])
    bases[:] = expanded


def setup(app: Any) -> None:
    app.connect("autodoc-process-bases", _public_bases)
