#!/usr/bin/env bash
# `make demo`: run the example DAG against the local GMI simulator, through the real
# deferral path of `airflow dags test`, and leave the video in out/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

work=$(mktemp -d)
port=$(python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key="demo-$(python -c 'import secrets; print(secrets.token_hex(8))')"

python -m airflow_provider_kling.testing.simulator --port "$port" --api-key "$key" \
    --queued-seconds 2 --processing-seconds 4 >"$work/simulator.log" 2>&1 &
sim_pid=$!
cleanup() { kill "$sim_pid" 2>/dev/null || true; wait "$sim_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

python - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/_simulator/stats"
for _ in range(100):
    try:
        urllib.request.urlopen(url, timeout=1)
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("The simulator did not start; see its log above.")
PY

export AIRFLOW_HOME="$work/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$root/example_dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__LOGGING__LOGGING_LEVEL=INFO
# Readable lines for a person: time, level and message, without the logger path and source
# location Airflow adds by default (every provider message is still shown, as is any error).
export AIRFLOW__LOGGING__LOG_FORMAT='%(asctime)s %(levelname)-7s %(message)s'
export AIRFLOW__LOGGING__LOG_TIMESTAMP_FORMAT='%H:%M:%S'
export AIRFLOW_CONN_KLING_DEFAULT="{\"conn_type\": \"kling\", \"host\": \"http://127.0.0.1:$port\", \"password\": \"$key\"}"
export KLING_EXAMPLE_OUT="$root/out"
mkdir -p "$root/out"

echo "Preparing a throw-away Airflow home in $AIRFLOW_HOME ..."
airflow db migrate >"$work/db.log" 2>&1 || { cat "$work/db.log"; exit 1; }
echo "Running kling_image_to_video against the simulator at 127.0.0.1:$port ..."
airflow dags test kling_image_to_video 2>&1 | tee "$work/dag.log" \
    | grep -E "Kling request|Saved Kling video|DagRun Finished| ERROR |Traceback" | cut -c1-220 || true
if ! grep -q "Saved Kling video to" "$work/dag.log"; then
    echo "The demo DAG did not save a video; its full output:" >&2
    cat "$work/dag.log" >&2
    exit 1
fi
# What the submit task recorded (the Kling videos page in the UI shows the same).
python - <<'PY'
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from sqlalchemy import select

from airflow_provider_kling.tasks.ledger import REQUEST_KEY

with create_session() as session:
    record = session.scalars(
        select(XComModel.value)
        .where(XComModel.dag_id == "kling_image_to_video", XComModel.key == REQUEST_KEY)
        .order_by(XComModel.timestamp.desc())
    ).first()
if not record:
    raise SystemExit("The submit task recorded no Kling request.")
print(f"Kling request {record['request_id']}: estimated cost ${record['estimated_cost_usd']:.2f}")
PY
video=$(grep -o "Saved Kling video to [^ ]*" "$work/dag.log" | tail -n 1 | cut -d" " -f5)
echo "Done: $video"
# The DAG asks for 720p, but the simulator renders a small stand-in; say so, with its real size.
python - "$video" <<'PY'
import sys

try:
    import av
except ImportError:  # without the simulator-video extra the simulator serves a fixed sample clip
    size = "a sample clip"
else:
    with av.open(sys.argv[1]) as clip:
        stream = clip.streams.video[0]
        size = f"{stream.width}x{stream.height} px"
print(
    f'Note: the "720p" clip is {size}: the simulator renders small clips (320 px on the longer '
    "side for 720p, 480 px for 1080p) to stay fast; GMI Cloud returns the real 720p. See docs/simulator.rst."
)
PY
