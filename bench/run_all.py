"""Run every benchmark and write ``docs/performance.md`` (``make bench``), or run them tiny (``make test``).

The smoke run proves the benchmarks still work; its figures mean nothing and are not kept.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, Section, table

# Triggers at scale, polling policy, DAG-parse cost, memory, the UI view, the drop folder, the
# triggers in the production deployment (Postgres, Celery, two triggerers), and the worker
# processes each way of waiting starts in that deployment.
BENCHMARKS = ("triggers", "polling", "imports", "memory", "ui_paging", "dropfolder", "deployment", "paths")
# A deployment takes minutes to start even at a tiny size, and the e2e suite already runs that
# topology: the smoke run (in `make test`) leaves those out; `make bench-deployment` and
# `make bench-paths` run each alone.
NOT_IN_SMOKE = ("deployment", "paths")


def machine() -> list[str]:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line
        ]
        cpu = names[0] if names else cpu
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kb = int(meminfo.read_text().split()[1])
        mem = f", {kb / 1024 / 1024:.0f} GiB RAM"
    return [
        f"- Machine: {cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}, apache-airflow {version('apache-airflow')}, "
        f"httpx {version('httpx')}, requests {version('requests')}",
    ]


def render(sections: list[Section], seconds: float, smoke: bool) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Performance",
        "",
        "<!-- Written by `make bench` (bench/run_all.py); edit the benchmarks, not this page. -->",
        "",
        "How the provider behaves with thousands of waiting requests, many polls, large images and "
        "large videos. Every figure comes from the scripts under `bench/` and is set against a "
        "baseline measured in the same run, because these machines are shared and noisy. "
        "`make bench` runs them all and rewrites this page; `make test` runs them at a tiny size "
        "so they cannot rot, and asserts nothing about speed, except the two deployment "
        "measurements (a deployment alone takes minutes to start, and the end-to-end tests run "
        "that topology): `make bench-deployment` and `make bench-paths` run only those.",
        "",
        f"- Run: `make bench` ({'smoke size' if smoke else 'full size'}), {when}, {seconds / 60:.1f} min",
        *machine(),
        "",
        "## Targets",
        "",
        *table(
            ["Part", "Target", "Goal", "Measured", "Met"],
            [
                [s.title, t.name, t.goal, t.measured, "yes" if t.met else "**no**"]
                for s in sections
                for t in s.targets
            ],
        ),
        "",
    ]
    for section in sections:
        lines.append(section.markdown())
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: prove the benchmarks work")
    parser.add_argument("--output", type=Path, help="write the page here (default: print it)")
    parser.add_argument("--only", nargs="*", choices=BENCHMARKS, help="run only these")
    args = parser.parse_args()
    os.chdir(ROOT)
    started = time.monotonic()
    sections = []
    names = args.only or [n for n in BENCHMARKS if not (args.smoke and n in NOT_IN_SMOKE)]
    for name in names:
        print(f"bench: {name}{' (smoke)' if args.smoke else ''}...", file=sys.stderr, flush=True)
        step = time.monotonic()
        sections.append(importlib.import_module(name).run(args.smoke))
        print(f"bench: {name} took {time.monotonic() - step:.0f} s", file=sys.stderr, flush=True)
    page = render(sections, time.monotonic() - started, args.smoke)
    if args.output:
        args.output.write_text(page)
        print(f"bench: wrote {args.output}", file=sys.stderr)
    else:
        print(page)
    missed = [f"{s.title}: {t.name}" for s in sections for t in s.targets if not t.met]
    if missed:
        print("bench: targets not met (explained on the page): " + "; ".join(missed), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
