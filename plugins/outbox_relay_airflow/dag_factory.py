"""Build each registered service's DAGs from its YAML file (relay, backfill, replay, confirmations, cleanup,
reconcile).

Parsing does no database or network I/O: tasks re-read their config and open
connections only when they run. Each task body imports its task module itself, because the DAG
processor imports this module in a new process on every re-parse (every 30 s by default) and the task
code (relay engine, hooks, Kafka client) would triple that import's cost. A bad config never stops the
other services' DAGs from loading; ``config_errors`` turns it into an import error of its own.
"""

from __future__ import annotations

import logging
import sys
import zlib
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, Param, get_current_context, task
from airflow.sdk.definitions.deadline import DeadlineAlert
from airflow.sdk.definitions.param import ParamsDict
from airflow.triggers.base import BaseEventTrigger

from outbox_relay.config import ServiceConfig
from outbox_relay.config.fields import CONFIRMATIONS_WAITING, EVENT_DRIVEN
from outbox_relay.config.loader import ServiceFileError
from outbox_relay.requests import (
    BackfillRequest,
    CleanupRequest,
    ConfirmRequest,
    OperatorRequest,
    ReconcileRequest,
    RelayRequest,
    ReplayRequest,
)
from outbox_relay_airflow.compat import AssetOrTimeSchedule, CronDataIntervalTimetable, CronTriggerTimetable
from outbox_relay_airflow.observability import published_alias, relay_deadline
from outbox_relay_airflow.params import request_params
from outbox_relay_airflow.services_folder import read_services
from outbox_relay_airflow.triggers import ConfirmationsWaitingTrigger, OutboxRowsTrigger

log = logging.getLogger(__name__)

START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
CRON_PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def service_dag_id(service: str, kind: str) -> str:
    """The id of a service's generated DAG of one kind (relay, replay, backfill, confirmations, ...)."""
    return f"outbox_{service}_{kind}"


def _timetable(schedule: Any) -> Any:
    """Cron schedules get data intervals, which backfills need to know which rows to re-scan; anything else
    (None, @once, @continuous, the assets of an event-driven DAG) is Airflow's as it is."""
    if not isinstance(schedule, str) or schedule in {"@once", "@continuous"}:
        return schedule
    return CronDataIntervalTimetable(CRON_PRESETS.get(schedule, schedule), timezone="UTC")


def _default_args(config: ServiceConfig) -> dict[str, Any]:
    return {
        "owner": config.owner,
        "retries": 3,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    }


def _doc(config: ServiceConfig, what: str) -> str:
    confirmation = config.confirmation.topic if config.confirmation else "none"
    return (
        f"### Outbox {what} DAG for service `{config.service}`\n\n{config.description}\n\n"
        f"* table: `{config.table}` (connection `{config.connections.db}`)\n"
        f"* topics: {', '.join(f'`{t}`' for t in config.all_topics) or 'per row'} "
        f"(connection `{config.connections.kafka}`)\n"
        f"* confirmation topic: `{confirmation}`\n"
        f"* batch {config.batch_size}, threshold {config.threshold_seconds:g}s, "
        f"max attempts {config.retry.max_attempts}\n\n"
        "Generated from the service's YAML file; see docs/outage.md for backfills."
    )


@contextmanager
def _service_dag(
    config: ServiceConfig,
    kind: str,
    description: str,
    schedule: Any,
    request: type[OperatorRequest],
    *,
    params: dict[str, Param] | None = None,
    deadline: DeadlineAlert | None = None,
) -> Iterator[DAG]:
    """The settings every generated DAG shares; its Params are the fields of the operation's ``request``
    model (``params``: the same, narrowed for the service).

    The DAG gets its params only after its tasks are built, so no task keeps a copy of them: a task
    run reads the DAG's params anyway (the task runner merges them into its context), and serializing
    every task's copy was most of the cost of parsing these DAGs, paid on every re-parse."""
    with DAG(
        deadline=deadline,
        dag_id=service_dag_id(config.service, kind),
        description=description,
        schedule=_timetable(schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=config.start_paused,
        default_args=_default_args(config),
        tags=["outbox", kind, config.service],
        doc_md=_doc(config, kind),
    ) as dag:
        yield dag
    dag.params = ParamsDict(params if params is not None else request_params(request))


def _under_dags_test() -> bool:
    """``airflow dags test`` on Airflow 3.3.2 fails a successful run of a DAG that has a deadline, while
    pruning it (apache/airflow#73428): DAGs parsed by that command are built without their Deadline Alert.
    (Reads the command line only: no I/O at parse time.)"""
    return sys.argv[1:3] == ["dags", "test"]


def fallback_cron(config: ServiceConfig) -> str | None:
    """The cron of an event-driven DAG's fallback clock (None: none). ``@hourly`` is at a minute fixed
    per service, so a hundred services' fallback runs do not all start at :00."""
    cron = config.watch_fallback_schedule
    if cron == "@hourly":
        return f"{zlib.crc32(config.service.encode()) % 60} * * * *"
    return None if cron is None else CRON_PRESETS.get(cron, cron)


def _watched(config: ServiceConfig, name: str, uri: str, trigger: BaseEventTrigger) -> Any:
    """A schedule on one asset whose watcher runs ``trigger`` in the triggerer (no I/O here: the trigger
    connects when the triggerer runs it), or on a slow cron as well (``watch_fallback_schedule``), so that
    a dead triggerer delays the work instead of stopping it."""
    assets = [Asset(name=name, uri=uri, watchers=[AssetWatcher(name=name, trigger=trigger)])]
    cron = fallback_cron(config)
    if cron is None:
        return assets
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=assets)


def _relay_schedule(config: ServiceConfig, folder: str | None) -> Any:
    """The relay's schedule; ``@rows``: the asset ``outbox://<service>``, watched by one
    ``OutboxRowsTrigger``, or that asset or the fallback cron."""
    if config.schedule != EVENT_DRIVEN:
        return config.schedule
    trigger = OutboxRowsTrigger(config.service, config.watch_seconds, folder)
    return _watched(config, f"outbox_{config.service}_rows", f"outbox://{config.service}", trigger)


def _confirm_schedule(config: ServiceConfig, folder: str | None) -> Any:
    """The confirmations' schedule; ``@messages``: the asset ``outbox-confirmations://<service>``, watched
    by one ``ConfirmationsWaitingTrigger``, or that asset or the fallback cron."""
    if config.confirm_schedule != CONFIRMATIONS_WAITING:
        return config.confirm_schedule
    trigger = ConfirmationsWaitingTrigger(config.service, config.watch_seconds, folder)
    uri = f"outbox-confirmations://{config.service}"
    return _watched(config, f"outbox_{config.service}_confirmations", uri, trigger)


def relay_dag(config: ServiceConfig, folder: str | None = None) -> DAG:
    with _service_dag(
        config,
        "relay",
        f"Relay {config.table} to Kafka",
        _relay_schedule(config, folder),
        RelayRequest,
        deadline=None if _under_dags_test() else relay_deadline(config),
    ) as dag:

        @task(task_id="ensure_topics")
        def ensure_topics(service: str) -> list[str]:
            from outbox_relay_airflow.tasks import relay as tasks

            return tasks.run_ensure_topics(service, folder)

        @task(task_id="relay", outlets=[] if config.shards > 1 else [published_alias(config.service)])
        def relay(service: str, shard: int | None = None) -> dict[str, Any]:
            from outbox_relay_airflow.tasks import relay as tasks

            return tasks.run_relay(service, dict(get_current_context()), folder, shard=shard)

        @task(task_id="announce_topics", outlets=[published_alias(config.service)])
        def announce_topics(service: str) -> list[str]:
            """A sharded run's asset events, once for all its shards (see ``tasks.run_relay``)."""
            from outbox_relay_airflow.tasks import relay as tasks

            return tasks.run_announce_topics(service, dict(get_current_context()), folder)

        @task(task_id="check_health", retries=0)
        def check_health(service: str) -> dict[str, Any]:
            """Red run when rows were given up on or the SLO is breached (the relay's work is committed)."""
            from outbox_relay_airflow.tasks import relay as tasks

            return tasks.run_check_health(service, dict(get_current_context()), folder)

        # A sharded service maps one relay task per shard; they run side by side on the executor's workers.
        if config.shards > 1:
            shards = relay.partial(service=config.service).expand(shard=list(range(config.shards)))
            (
                ensure_topics(config.service)
                >> shards
                >> announce_topics(config.service)
                >> check_health(config.service)
            )
        else:
            ensure_topics(config.service) >> relay(config.service) >> check_health(config.service)
    return dag


def confirmations_dag(config: ServiceConfig, folder: str | None = None) -> DAG:
    topic = config.confirmation.topic if config.confirmation else ""
    with _service_dag(
        config,
        "confirmations",
        f"Ingest {topic} into {config.table}",
        _confirm_schedule(config, folder),
        ConfirmRequest,
    ) as dag:

        @task(task_id="ingest_confirmations")
        def ingest(service: str) -> dict[str, Any]:
            from outbox_relay_airflow.tasks import confirmations as tasks

            return tasks.run_confirmations(service, dict(get_current_context()), folder)

        @task(task_id="check_health", retries=0)
        def check_health(service: str) -> dict[str, Any]:
            """Red run when too many of the consumers' answers were FAILED (the ingest is committed)."""
            from outbox_relay_airflow.tasks import confirmations as tasks

            return tasks.run_check_answers(service, dict(get_current_context()), folder)

        ingest(config.service) >> check_health(config.service)
    return dag


def cleanup_dag(config: ServiceConfig, folder: str | None = None) -> DAG:
    description = f"Delete old terminal rows of {config.table}"
    with _service_dag(config, "cleanup", description, config.cleanup_schedule, CleanupRequest) as dag:

        @task(task_id="delete_expired_rows")
        def cleanup(service: str) -> dict[str, Any]:
            from outbox_relay_airflow.tasks import cleanup as tasks

            return tasks.run_cleanup(service, dict(get_current_context()), folder)

        cleanup(config.service)
    return dag


def reconciliation_dag(config: ServiceConfig, folder: str | None = None) -> DAG:
    """Daily (by default) comparison of the outbox table with the consumers' table."""
    assert config.reconciliation is not None
    rec = config.reconciliation
    description = f"Reconcile {config.table} with {rec.consumer_table}"
    with _service_dag(config, "reconcile", description, rec.schedule, ReconcileRequest) as dag:

        @task(task_id="reconcile")
        def reconcile(service: str) -> dict[str, Any]:
            from outbox_relay_airflow.tasks import reconcile as tasks

            return tasks.run_reconciliation(service, dict(get_current_context()), folder)

        reconcile(config.service)
    return dag


def backfill_dag(config: ServiceConfig, folder: str | None = None) -> DAG:
    """Manual runs only: one run relays a whole window however long it is, in chunks that take turns with
    the scheduled relay. Cancel it by marking the run failed: sent rows stay sent, the rest stay NEW."""
    description = f"Relay (or republish) rows of {config.table} created in a time window"
    with _service_dag(config, "backfill", description, None, BackfillRequest) as dag:

        @task(task_id="backfill", outlets=[published_alias(config.service)])
        def backfill(service: str) -> dict[str, Any]:
            from outbox_relay_airflow.tasks import backfill as tasks

            return tasks.run_backfill(service, dict(get_current_context()), folder)

        backfill(config.service)
    return dag


def _replay_params(config: ServiceConfig) -> dict[str, Param]:
    """The replay request's Params, its statuses narrowed to what the service can replay."""
    kinds = {"items": {"type": "string", "enum": ReplayRequest.kinds_for(config)}}
    return request_params(ReplayRequest, {"statuses": kinds})


def replay_dag(config: ServiceConfig, folder: str | None = None) -> DAG:
    """Manual runs only: plan (a dry run), a human's approval above ``replay_approval_above_rows``
    (Airflow's Required Actions), then the replay; each run is the audit record of who asked and why."""
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    threshold = config.replay_approval_above_rows
    description = f"Replay FAILED / unconfirmed rows of {config.table}"
    with _service_dag(
        config, "replay", description, None, ReplayRequest, params=_replay_params(config)
    ) as dag:

        @task(task_id="plan")
        def plan(service: str) -> dict[str, Any]:
            from outbox_relay_airflow.tasks import replay as tasks

            return tasks.run_replay_plan(service, dict(get_current_context()), folder)

        @task.branch(task_id="needs_approval")
        def needs_approval(planned: dict[str, Any]) -> list[str]:
            params = get_current_context()["params"]
            if params.get("dry_run") or not planned["matched"]:
                return []  # nothing to change: approve and replay are skipped
            return ["approve", "replay"] if planned["matched"] > threshold else ["replay"]

        approve = ApprovalOperator(
            task_id="approve",
            subject=f"Replay rows of outbox service {config.service}?",
            body="{{ ti.xcom_pull(task_ids='plan')['approval'] }}",
        )

        @task(task_id="replay", trigger_rule="none_failed_min_one_success")
        def run(service: str) -> dict[str, Any]:
            from outbox_relay_airflow.tasks import replay as tasks

            return tasks.run_replay(service, dict(get_current_context()), folder)

        branch = needs_approval(plan(config.service))  # type: ignore[arg-type]  # an XComArg at parse time
        done = run(config.service)
        branch >> [approve, done]
        approve >> done
    return dag


def service_dags(config: ServiceConfig, folder: str | None = None) -> list[DAG]:
    """The service's DAGs; ``folder``: the services folder given to the DAG file (None: the default one),
    which their tasks and triggers read the service's file from."""
    dags = [relay_dag(config, folder), replay_dag(config, folder)]
    if config.columns.created_at is not None:
        dags.append(backfill_dag(config, folder))
    if config.confirmation is not None:
        dags.append(confirmations_dag(config, folder))
    if config.retention is not None:
        dags.append(cleanup_dag(config, folder))
    if config.reconciliation is not None:
        dags.append(reconciliation_dag(config, folder))
    return dags


def build_all(directory: str | Path | None = None) -> tuple[dict[str, DAG], list[ServiceFileError]]:
    """Every valid service's DAGs, plus the errors of the invalid ones (never raised here)."""
    loaded = read_services(directory)
    folder = None if directory is None else str(directory)
    dags: dict[str, DAG] = {}
    errors = list(loaded.errors)
    for config in loaded.services.values():
        try:
            built = service_dags(config, folder)
        except Exception as exc:  # a DAG the config validated but Airflow refuses: report it, keep the rest
            errors.append(
                ServiceFileError(Path(f"{config.service}.yaml"), [f"Airflow rejected the DAG: {exc}"])
            )
            continue
        dags.update({d.dag_id: d for d in built})
    return dags, errors


def register_outbox_dags(
    namespace: MutableMapping[str, Any], services_dir: str | Path | None = None
) -> dict[str, DAG]:
    """The one line of a DAG file: ``register_outbox_dags(globals())`` puts every registered service's DAGs
    into the file's namespace, where Airflow finds them.

    ``services_dir``: the folder of service files; default ``$OUTBOX_RELAY_SERVICES_DIR``, else ``services``
    in Airflow's DAG folder. Invalid files are logged here and leave the other services' DAGs alone; a DAG
    file calling ``raise_config_errors()`` (``outbox-relay init`` writes one) shows them as import errors."""
    dags, errors = build_all(services_dir)
    for error in errors:
        log.warning("outbox service config not loaded: %s", error)
    namespace.update(dags)
    return dags
