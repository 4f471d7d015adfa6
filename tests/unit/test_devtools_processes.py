"""What a deployment's process group costs (``devtools/processes.py``), read from /proc."""

from __future__ import annotations

import subprocess
import sys

from airflow_provider_kling.testing.readiness import wait_until
from devtools.processes import group_usage, stop_group

# A group leader that starts a short-lived child, as a Celery worker starts a task process, waits
# for it, then idles: the child's CPU must still count for the group once the child is gone.
BUSY = "import time\\nend = time.process_time() + 0.6\\nwhile time.process_time() < end: pass"
LEADER = f"""
import subprocess, sys, time
subprocess.run([sys.executable, "-c", "{BUSY}"], check=True)
print("reaped", flush=True)
time.sleep(60)
"""


def test_a_groups_cpu_includes_its_exited_children() -> None:
    leader = subprocess.Popen(
        [sys.executable, "-c", LEADER], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert leader.stdout is not None
        assert leader.stdout.readline().strip() == "reaped"
        # Only the idle leader is left in the group; the child's 0.6 s are in its parent's cutime.
        wait_until(lambda: group_usage(leader.pid)[0] >= 0.6, 10, "the child's CPU to count")
        cpu, rss_kb = group_usage(leader.pid)
        assert 0.6 <= cpu < 5
        assert rss_kb > 0
    finally:
        stop_group(leader.pid)
