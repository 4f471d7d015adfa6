"""The topologies of :mod:`devtools.deployment`: the local one's settings, and the production one:
Postgres, Redis, Celery.

As Airflow's official docker-compose runs it: a Postgres metadata database, the CeleryExecutor
with a Redis broker and the Postgres result backend, two Celery workers and two triggerers.

Postgres and Redis are Debian's packages (``make services`` installs them). Each deployment gets
a throw-away Postgres cluster (``initdb`` in a temporary folder, run as the unprivileged
``postgres`` user when we are root, since ``initdb`` refuses root) and a Redis with no
persistence, each on a free loopback port, both stopped and deleted by ``stop()``.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from airflow_provider_kling.testing.readiness import wait_until

if TYPE_CHECKING:
    from devtools.deployment import AirflowStack

TOPOLOGIES = ("local", "celery")
#: What the celery topology runs besides the api-server, scheduler and dag-processor.
CELERY_WORKERS = ("celery-worker-1", "celery-worker-2")
TRIGGERERS = ("triggerer", "triggerer-2")
WORKER_CONCURRENCY = 2
DATABASE = "airflow"
UNPRIVILEGED_USER = "postgres"


def server_binary(name: str) -> str:
    """A Postgres or Redis server program: on PATH, else where Debian's packages put it."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    if not found:
        raise RuntimeError(
            f"{name} is missing: run `make services` (apt-get install postgresql redis-server)"
        )
    return found


def local_env(home: Path, dags_folder: Path, api_port: int, admin: str) -> dict[str, str]:
    """Every component's environment in the local topology (SQLite, LocalExecutor), which the
    celery one starts from: one home, one Fernet key and set of secrets, loopback ports."""
    from cryptography.fernet import Fernet

    from devtools.processes import free_port  # which imports this module

    base_url = f"http://127.0.0.1:{api_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            # As in production: nothing runs until someone unpauses it (the tests do).
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{admin}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # Fast enough for tests on two cores, slow enough not to burn them.
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__STALE_DAG_THRESHOLD": "120",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            # A killed triggerer's triggers move to a new one after this many seconds.
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "8",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "KLING_EXAMPLE_OUT": str(home / "out"),
            "KLING_BATCH_WORKDIR": str(home / "batch"),
            # The drop-folder example watches this folder (its videos go to out/drop).
            "KLING_DROP_FOLDER": str(home / "incoming"),
            "KLING_DROP_POLL_SECONDS": "2",
        }
    )
    return env


def component_argv(airflow: str, name: str) -> list[str]:
    """The command line of one component; ``triggerer-2`` is a second ``airflow triggerer``."""
    if name in CELERY_WORKERS:
        number = name.rsplit("-", 1)[1]
        return [
            airflow,
            "celery",
            "worker",
            "--concurrency",
            str(WORKER_CONCURRENCY),
            "--celery-hostname",
            f"worker{number}@%h",
            "--without-gossip",
            "--without-mingle",
        ]
    return [airflow, name.split("-")[0] if name.startswith("triggerer") else name]


def component_env(name: str, env: dict[str, str], free_port: int) -> dict[str, str]:
    """Two workers (or triggerers) on one machine: each serves its logs on its own port."""
    if name in CELERY_WORKERS:
        return {**env, "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port)}
    if name == "triggerer-2":
        return {**env, "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port)}
    return env


def workers_ready(log_dir: Path, names: tuple[str, ...]) -> bool:
    """Whether each Celery worker has connected to the broker (the health endpoint cannot tell)."""
    return all(
        (log_dir / f"{name}.log").exists()
        and " ready." in (log_dir / f"{name}.log").read_text(errors="replace")
        for name in names
    )


@dataclass
class Services:
    """A throw-away Postgres cluster and Redis broker for one stack; ``start()`` then ``stop()``."""

    stack: AirflowStack
    postgres_port: int = 0
    redis_port: int = 0
    data_dir: Path | None = None
    _owner: list[str] = field(default_factory=list)

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg2://{DATABASE}@127.0.0.1:{self.postgres_port}/{DATABASE}"

    def airflow_env(self) -> dict[str, str]:
        """What every Airflow component needs to use these services with the CeleryExecutor."""
        return {
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://{DATABASE}@127.0.0.1:{self.postgres_port}/{DATABASE}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
            # A task whose worker died is failed (and retried) after this long, not 5 minutes.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        }

    def start(self, free_port: int, redis_port: int) -> None:
        self.postgres_port, self.redis_port = free_port, redis_port
        self._start_postgres()
        self.stack.spawn_service(
            "redis",
            [
                server_binary("redis-server"),
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.stack.home),
            ],
        )
        wait_until(lambda: _redis_ping(self.redis_port), 60, "Redis")

    def _start_postgres(self) -> None:
        # Not under AIRFLOW_HOME: pytest's temporary folders are private to root, and the
        # cluster belongs to an unprivileged user.
        self.data_dir = Path(tempfile.mkdtemp(prefix="kling-postgres-"))
        self.stack.record_cleanup(str(self.data_dir))
        if os.geteuid() == 0:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
            self._owner = ["runuser", "-u", UNPRIVILEGED_USER, "--"]
        initdb = [server_binary("initdb"), "-D", str(self.data_dir / "data"), "-U", DATABASE]
        initdb += ["--auth=trust", "-E", "UTF8", "--no-sync"]
        self.stack.run_to_end("initdb", [*self._owner, *initdb], dict(os.environ), cwd=self.data_dir)
        self.stack.spawn_service(
            "postgres",
            [
                *self._owner,
                server_binary("postgres"),
                "-D",
                str(self.data_dir / "data"),
                "-p",
                str(self.postgres_port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.data_dir),
                # A test database: durability buys nothing, and a busy machine needs connections.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=300",
            ],
            cwd=self.data_dir,
        )
        wait_until(self._create_database, 120, "Postgres")

    def _create_database(self) -> bool:
        import sqlalchemy

        server = f"postgresql+psycopg2://{DATABASE}@127.0.0.1:{self.postgres_port}/postgres"
        engine = sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.NullPool)
        try:
            with engine.connect() as conn:
                exists = conn.execute(
                    sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": DATABASE}
                ).first()
                if exists is None:
                    conn.execute(sqlalchemy.text(f"CREATE DATABASE {DATABASE}"))
        except sqlalchemy.exc.OperationalError:
            return False
        finally:
            engine.dispose()
        return True


def _redis_ping(port: int) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
