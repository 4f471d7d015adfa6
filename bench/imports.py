"""Part 3: what DAG parsing pays to import the operator and sensor, beyond ``airflow.sdk`` itself.

Each measurement is a fresh interpreter running ``python -X importtime``: it imports ``airflow.sdk``,
writes a marker to stderr, then imports the modules measured. The import time of everything after the
marker (the sum of importtime's *self* column) is what those modules add. The baseline, in the same
run and interleaved with ours so that load on the machine falls on both alike, is the upstream HTTP
provider's ``HttpOperator``, the operator a DAG author would otherwise call GMI with.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Section, Target, cli, ratio, table

MARK = "-- kling bench: airflow.sdk imported --"
HEAVY = ("requests", "httpx", "aiohttp", "urllib3", "tenacity")
SUBJECTS = {
    "provider": (
        "airflow_provider_kling.operators.kling",
        "airflow_provider_kling.sensors.kling",
    ),
    "http": ("airflow.providers.http.operators.http",),
}
LABELS = {
    "provider": "this provider: `KlingI2VOperator` + `KlingStatusSensor` modules",
    "http": "upstream HTTP provider: `HttpOperator` module",
}

# Runs in the child: the modules it imports after the marker, and which heavy libraries were new.
CHILD = f"""
import sys, json, airflow.sdk
before = set(sys.modules)
sys.stderr.write({MARK!r} + "\\n")
for name in sys.argv[1:]:
    __import__(name)
added = set(sys.modules) - before
print(json.dumps({{
    "modules": len(added),
    "heavy": sorted(h for h in {HEAVY!r} if h in added),
    "sdk_heavy": sorted(h for h in {HEAVY!r} if h in before),
}}))
"""


@dataclass(frozen=True)
class Sample:
    import_ms: float
    modules: int
    heavy: list[str]
    sdk_heavy: list[str]


def sample(subject: str) -> Sample:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", CHILD, *SUBJECTS[subject]],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    lines = proc.stderr.splitlines()
    after = lines[lines.index(MARK) + 1 :]
    # "import time: self [us] | cumulative | imported package"
    self_us = [int(line.split("|")[0].split(":")[1]) for line in after if line.startswith("import time:")]
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    return Sample(sum(self_us) / 1000, info["modules"], info["heavy"], info["sdk_heavy"])


def run(smoke: bool) -> Section:
    rounds = 2 if smoke else 10
    samples: dict[str, list[Sample]] = {name: [] for name in SUBJECTS}
    for _ in range(rounds):
        for name in SUBJECTS:
            samples[name].append(sample(name))
    median = {name: statistics.median(s.import_ms for s in runs) for name, runs in samples.items()}
    rows = []
    for name, runs in samples.items():
        times = sorted(s.import_ms for s in runs)
        rows.append(
            [
                LABELS[name],
                f"{median[name]:.0f} ms",
                f"{times[0]:.0f}-{times[-1]:.0f} ms",
                ratio(median[name], median["http"]),
                f"{runs[0].modules}",
                ", ".join(runs[0].heavy) or "none",
            ]
        )
    ours = samples["provider"][0]
    ours_ratio = median["provider"] / median["http"]
    body = [
        f"Median of {rounds} fresh interpreters each, the two interleaved. Of the heavy libraries "
        f"({', '.join(HEAVY)}), `airflow.sdk` itself already imports "
        f"{' and '.join(ours.sdk_heavy) or 'none'}; the table names those each subject adds on top.",
        "",
        *table(
            [
                "imported after `airflow.sdk`",
                "import time (median)",
                "range",
                "÷ HTTP provider",
                "modules added",
                "heavy libraries added",
            ],
            rows,
        ),
        "",
        "The provider keeps `requests`, `tenacity`'s retry loop and the HTTP work out of module level: "
        "hooks import them when a task runs, never while the DAG file is parsed "
        "(`tests/unit/test_parse_time.py` checks that in a fresh interpreter on every `make test`).",
    ]
    targets = [
        Target(
            "Incremental import vs HTTP provider",
            "≤ 0.5x",
            f"{ours_ratio:.2f}x ({median['provider']:.0f} ms vs {median['http']:.0f} ms)",
            ours_ratio <= 0.5,
        ),
        Target(
            "HTTP clients imported at parse time",
            "neither requests nor httpx",
            (", ".join(ours.heavy) or "none")
            + (" (httpx comes with `airflow.sdk` itself)" if "httpx" in ours.sdk_heavy else ""),
            not {"requests", "httpx"} & set(ours.heavy),
        ),
    ]
    return Section(
        "DAG-parse cost",
        ["python bench/imports.py          # ~1 min", "python bench/imports.py --smoke"],
        "\n".join(body),
        targets,
    )


if __name__ == "__main__":
    cli(run, __doc__)
