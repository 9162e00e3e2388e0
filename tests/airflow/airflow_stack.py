"""A real Airflow 3 deployment for tests: api-server, scheduler and dag-processor with LocalExecutor
on a fresh PostgreSQL metadata database (Airflow does not support MySQL/MariaDB for itself here)."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import Engine

from devstack.api_ready import wait_until_answering
from tests.conftest import ROOT
from tests.stack import airflow_connections, service_folder

PG_URL = os.environ.get("OUTBOX_TEST_AIRFLOW_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
AIRFLOW = str(ROOT / ".venv" / "bin" / "airflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _psql(sql: str, *params: object, db: str = "postgres") -> list[tuple[Any, ...]]:
    import psycopg2

    conn = psycopg2.connect(f"{PG_URL.replace('postgresql+psycopg2://', 'postgresql://')}/{db}")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params or None)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


class AirflowStack:
    def __init__(self, home: Path, env: dict[str, str], db: str, port: int) -> None:
        self.home = home
        self.env = env
        self.db = db
        self.url = f"http://127.0.0.1:{port}"
        self._token: str | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}  # Celery worker name -> its process
        self.processes: list[subprocess.Popen[bytes]] = []  # every component started (workers too)

    def kill_worker(self, name: str) -> None:
        """``kill -9`` a Celery worker and everything it started (its pool and the task processes), as a
        machine that dies would: no warm shutdown, no goodbye to the broker or the API server."""
        os.killpg(self.workers[name].pid, 9)
        self.workers[name].wait(30)

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call to the REST API (``/api/v2`` + path) as the all-admins user; returns the JSON body."""
        import httpx

        if self._token is None:
            self._token = httpx.get(f"{self.url}/auth/token", timeout=30).json()["access_token"]
        reply = httpx.request(
            method, f"{self.url}/api/v2{path}", headers={"Authorization": f"Bearer {self._token}"}, timeout=30,
            **kwargs,
        )  # fmt: skip
        assert reply.is_success, f"{method} {path}: {reply.status_code} {reply.text[:2000]}"
        return reply.json() if reply.content else None

    def api_as(self, user: str, method: str, path: str, **kwargs: Any) -> Any:
        """A REST API call as ``user`` (stacks started with ``users``)."""
        import httpx

        headers = {"Authorization": f"Bearer {self.token(user)}"}
        reply = httpx.request(method, f"{self.url}/api/v2{path}", headers=headers, timeout=30, **kwargs)
        assert reply.is_success, f"{method} {path}: {reply.status_code} {reply.text[:2000]}"
        return reply.json() if reply.content else None

    def token(self, user: str) -> str:
        """A JWT for ``user`` (stacks started with ``users``; the password is the user's name)."""
        import httpx

        reply = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": user}, timeout=30)
        assert reply.is_success, f"login as {user}: {reply.status_code} {reply.text[:500]}"
        return str(reply.json()["access_token"])

    def wait_for_dag(self, dag_id: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while not self.metadata("SELECT 1 FROM dag WHERE dag_id = %s", dag_id):
            assert time.monotonic() < deadline, f"the DAG processor never parsed {dag_id}"
            time.sleep(1)

    def wait_for_watcher(self, trigger_class: str, seconds: float = 120) -> None:
        """An asset watcher's trigger of ``trigger_class`` is registered and a triggerer runs it."""
        deadline = time.monotonic() + seconds
        while not self.metadata(
            "SELECT 1 FROM trigger WHERE classpath LIKE %s AND triggerer_id IS NOT NULL", f"%.{trigger_class}"
        ):
            assert time.monotonic() < deadline, f"no triggerer runs the {trigger_class}"
            time.sleep(1)

    def wait_for_log(self, component: str, text: str, seconds: float) -> None:
        """Wait until ``text`` appears in a component's log (what the metadata DB does not show)."""
        deadline = time.monotonic() + seconds
        log = self.home / f"{component}.log"
        while text not in log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"{text!r} not in {log} after {seconds}s"
            time.sleep(1)

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """A manual run of ``dag_id`` with ``conf`` (as the all-admins user); its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, seconds: float = 300) -> str:
        """Poll the run (in the metadata DB) until it succeeded or failed; that state."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            state = self.metadata(
                "SELECT state FROM dag_run WHERE dag_id = %s AND run_id = %s", dag_id, run_id
            )
            if state and state[0][0] in {"success", "failed"}:
                return str(state[0][0])
            time.sleep(1)
        raise AssertionError(f"{dag_id} run {run_id} did not finish in {seconds}s")

    def wait_for_task(self, dag_id: str, run_id: str, task_id: str, states: set[str], seconds: float) -> str:
        """Poll the task instance (in the metadata DB) until it is in one of ``states``."""
        deadline = time.monotonic() + seconds
        state = None
        while time.monotonic() < deadline:
            found = self.metadata(
                "SELECT state FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = %s",
                dag_id, run_id, task_id,
            )  # fmt: skip
            state = found[0][0] if found else None
            if state in states:
                return str(state)
            time.sleep(1)
        raise AssertionError(f"{dag_id} {run_id} {task_id} is {state}, not in {states} after {seconds}s")

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def diagnosis(self, dag_prefix: str) -> str:
        """What a failed wait needs to be understood: the runs and task instances of the DAGs whose id
        starts with ``dag_prefix``, the triggers, and each component's last warnings and errors."""
        like = f"{dag_prefix}%"
        lines = [f"runs of {like}:"]
        lines += [_row(row) for row in self.metadata(
            "SELECT dag_id, run_id, run_type, state, queued_at, start_date, end_date FROM dag_run "
            "WHERE dag_id LIKE %s ORDER BY id", like)]  # fmt: skip
        lines.append("task instances:")
        lines += [_row(row) for row in self.metadata(
            "SELECT dag_id, run_id, task_id, state, try_number, start_date, end_date FROM task_instance "
            "WHERE dag_id LIKE %s ORDER BY start_date NULLS LAST", like)]  # fmt: skip
        lines.append("triggers:")
        lines += [_row(row) for row in self.metadata("SELECT id, classpath, triggerer_id FROM trigger")]
        for log in sorted(self.home.glob("*.log")):
            worrying = [line for line in log.read_text(errors="replace").splitlines()
                        if "ERROR" in line or "WARNING" in line or "Traceback" in line]  # fmt: skip
            lines += _excerpt(f"{log.name}, last warnings and errors:", worrying[-15:])
        task_logs = {
            log: log.read_text(errors="replace") for log in self.home.rglob(f"dag_id={dag_prefix}*/**/*.log")
        }
        failed = [log for log, text in task_logs.items() if "error" in text.lower()]
        for log in sorted(failed, key=lambda f: f.stat().st_mtime)[-3:]:
            lines += _excerpt(
                f"task log {log.relative_to(self.home)}, its end:", task_logs[log].splitlines()[-12:]
            )
        return "\n".join(lines)

    def metadata(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """A query on the stack's metadata database: waiting loops read it there, since every
        `airflow` CLI call costs seconds of CPU (imports) that the scheduler under test needs."""
        return _psql(sql, *params, db=self.db)


def _row(row: tuple[Any, ...]) -> str:
    return "  " + " | ".join(str(value) for value in row)


def _excerpt(title: str, lines: list[str]) -> list[str]:
    """A titled block of indented lines, each cut at 300 characters."""
    return [title, *(f"  {line[:300]}" for line in lines)]


def _migrated_template(env: dict[str, str]) -> str:
    """A metadata database migrated once per Airflow version (under a lock shared by the test workers):
    each stack starts from a copy, which takes a fraction of a second instead of a migration's seconds."""
    from importlib.metadata import version

    name = "airflow_tpl_" + version("apache-airflow").replace(".", "_")
    (ROOT / ".run").mkdir(exist_ok=True)
    with open(ROOT / ".run" / "airflow-pg-template.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _psql("SELECT 1 FROM pg_database WHERE datname = %s", name):
            building = f"{name}_building"
            _psql(f"DROP DATABASE IF EXISTS {building} WITH (FORCE)")
            _psql(f"CREATE DATABASE {building}")
            migrate_env = {**env, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG_URL}/{building}"}
            done = subprocess.run([AIRFLOW, "db", "migrate"], env=migrate_env, capture_output=True, text=True,
                                  timeout=300)  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            _psql(f"ALTER DATABASE {building} RENAME TO {name}")  # complete, or not there at all
    return name


@contextmanager
def airflow_stack(
    home: Path,
    extra_env: dict[str, str],
    triggerer: bool = False,
    users: dict[str, str] | None = None,
    celery_workers: int = 0,
) -> Iterator[AirflowStack]:
    """The stack; with ``triggerer`` also a triggerer (deferred tasks, e.g. Required Actions). Without
    ``users`` every caller is an admin (no login); with them (name -> role; password = name) nobody is
    until logged in. With ``celery_workers`` the CeleryExecutor and that many ``airflow celery worker``
    processes (one task slot each, named w1, w2, ...) on the local Redis, on a queue of this stack's own."""
    db = f"airflow_t_{uuid.uuid4().hex[:10]}"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG_URL}/{db}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",  # the tests run one task at a time; fewer idle workers to start
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",  # tests call the REST API as admin
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            # One key for every component: without it each one that starts before airflow.cfg exists
            # makes its own, and the triggerer cannot read what the scheduler encrypted (it dies).
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            # Under the suite's load the api-server may take over the default 5 s to answer a task process's
            # "started" call; the task instance then waits for zombie detection (minutes).
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **extra_env,
        }
    )
    if celery_workers:
        env.update(_celery_env(db))
    if users:
        home.mkdir(parents=True, exist_ok=True)
        (home / "passwords.json").write_text(json.dumps({name: name for name in users}))
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] = "False"
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] = ",".join(f"{n}:{r}" for n, r in users.items())
        env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] = str(home / "passwords.json")
    home.mkdir(parents=True, exist_ok=True)
    stack = AirflowStack(home, env, db, port)
    _psql(f"CREATE DATABASE {db} TEMPLATE {_migrated_template(env)}")
    procs = []
    try:
        components = [["api-server", "--port", str(port)], ["scheduler"], ["dag-processor"]]
        for component in components + ([["triggerer"]] if triggerer else []):
            log = open(home / f"{component[0]}.log", "w")  # noqa: SIM115 - closed with the process
            procs.append((subprocess.Popen([AIRFLOW, *component], env=env, stdout=log, stderr=subprocess.STDOUT,
                                           start_new_session=True), log))  # fmt: skip
            stack.processes.append(procs[-1][0])
        for n in range(1, celery_workers + 1):
            name = f"w{n}"
            log = open(home / f"worker-{name}.log", "w")  # noqa: SIM115 - closed with the process
            worker = subprocess.Popen(
                [AIRFLOW, "celery", "worker", "--concurrency", "1", "--celery-hostname", f"{name}@%h",
                 "--queues", env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"], "--pid", str(home / f"worker-{name}.pid"),
                 "--skip-serve-logs", "--without-mingle", "--without-gossip"],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            stack.workers[name] = worker
            stack.processes.append(worker)
            procs.append((worker, log))
        _wait_for_port(port, 90)
        wait_until_answering(port)
        yield stack
    finally:
        for proc, _log in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc, log in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            with suppress(ProcessLookupError):  # what it started (LocalExecutor workers, task processes)
                os.killpg(proc.pid, 9)
            log.close()
        with suppress(Exception):  # best effort: a leftover test database is harmless
            _psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


# What every event-driven service of the trigger tests has: started by its rows trigger, which looks every
# second, on no other schedule of its own (confirmations, retention), and not paused.
WATCHED_SERVICE = {
    "schedule": "'@rows'",
    "watch_seconds": "1",
    "confirm_schedule": "null",
    "retention": "null",
    "start_paused": "false",
}


@contextmanager
def watched_stack(
    engine: Engine,
    tmp_path: Path,
    service: str,
    topic: str,
    dag_id: str,
    watchers: Sequence[str] = ("OutboxRowsTrigger",),
    **fields: str,
) -> Iterator[AirflowStack]:
    """A stack with a triggerer running one event-driven service on ``engine``'s database (``WATCHED_SERVICE``
    on ``topic``, with ``fields`` as YAML values over it), yielded once ``dag_id`` is parsed and each of
    ``watchers``' triggers watches: a row or a confirmation written before then starts no run, and a test
    would wait on the wrong thing."""
    document = "".join(
        f"{key}: {value}\n" for key, value in {"topic": topic, **WATCHED_SERVICE, **fields}.items()
    )
    services = service_folder(tmp_path, service, document)
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(engine)}
    with airflow_stack(tmp_path / "airflow", env, triggerer=True) as stack:
        stack.wait_for_dag(dag_id)
        for trigger_class in watchers:
            stack.wait_for_watcher(trigger_class)
        yield stack


def _celery_env(db: str) -> dict[str, str]:
    """The CeleryExecutor on the local Redis (``include/devstack/redis.sh``), results in the stack's own
    metadata database, and a queue of the stack's own so that stacks of parallel tests never take each
    other's tasks. A task whose worker died is noticed after 20 s without a heartbeat (default 300)."""
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": os.environ.get("OUTBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{PG_URL}/{db}",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": f"outbox_t_{db[-10:]}",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    }


def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Airflow api-server did not listen on {port} within {seconds}s")
