"""Structural checks of the repository's docker-compose.yml (the Dockerfile's are in test_dockerfile.py).

Docker is not needed: the file is read with ``yaml.safe_load`` and the wiring between services is
checked the way ``docker compose`` would resolve it when no variables are set (every
``${VAR:-default}`` takes its default).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
AIRFLOW_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
)
LONG_RUNNING_AIRFLOW_SERVICES = tuple(name for name in AIRFLOW_SERVICES if name != "airflow-init")
REQUIRED_SERVICES = ("mysql", "kafka", "postgres", *AIRFLOW_SERVICES)
# The image docker compose builds from ./Dockerfile (the official image plus the relay's wheel).
AIRFLOW_IMAGE = "airflow-outbox-relay:local"

Services = dict[str, dict[str, Any]]

# ${VAR}, ${VAR:-default}, ${VAR-default}; "$$" is compose's escape for a literal "$".
_INTERPOLATION_RE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
)


def resolve_defaults(value: str) -> str:
    """Resolve compose interpolation as if no variable were set: take each default, unescape ``$$``."""

    def _replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return match.group("default") or ""

    return _INTERPOLATION_RE.sub(_replace, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"missing {COMPOSE_FILE}"
    loaded = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict), "docker-compose.yml must be a mapping"
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> Services:
    found = compose.get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml has no services"
    return found


def service_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment (map or KEY=VALUE list form), defaults resolved."""
    raw = service.get("environment") or {}
    pairs: dict[str, Any]
    if isinstance(raw, list):
        pairs = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    else:
        pairs = dict(raw)
    return {key: resolve_defaults("" if value is None else str(value)) for key, value in pairs.items()}


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of every volume entry of a service, defaults resolved."""
    mounts: list[tuple[str, str, bool]] = []
    for entry in service.get("volumes") or []:
        if isinstance(entry, dict):
            mounts.append(
                (
                    resolve_defaults(str(entry.get("source", ""))),
                    str(entry["target"]),
                    bool(entry.get("read_only", False)),
                )
            )
            continue
        parts = resolve_defaults(str(entry)).split(":")
        if len(parts) == 1:  # anonymous volume
            mounts.append(("", parts[0], False))
            continue
        mode = parts[2] if len(parts) > 2 else "rw"
        mounts.append((parts[0], parts[1], "ro" in mode.split(",")))
    return mounts


def is_path_source(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def depends_on_map(service: dict[str, Any]) -> dict[str, str]:
    """depends_on as {target: condition}; the short list form means service_started."""
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return {name: "service_started" for name in raw}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in raw.items()}


def listener_map(value: str) -> dict[str, tuple[str, int]]:
    """Parse Kafka's "NAME://host:port,..." into {NAME: (host, port)}."""
    listeners: dict[str, tuple[str, int]] = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        listeners[name] = (host, int(port))
    return listeners


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """{host_port: container_port} of a service's short-syntax port mappings."""
    mapping: dict[int, int] = {}
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            mapping[int(entry["published"])] = int(entry["target"])
            continue
        parts = resolve_defaults(str(entry)).split(":")
        assert len(parts) >= 2, f"port {entry!r} is not published on the host"
        mapping[int(parts[-2])] = int(parts[-1].split("/")[0])
    return mapping


def init_script(services: Services) -> str:
    command = services["airflow-init"]["command"]
    return resolve_defaults(command if isinstance(command, str) else "\n".join(command))


def outbox_db_connection(services: Services, **env_overrides: str) -> dict[str, Any]:
    """The connection JSON airflow-init stores, made by running its own `connections add` line with bash
    (the Airflow CLI replaced by printf) in airflow-init's environment."""
    script = init_script(services)
    start = script.index("/entrypoint airflow connections add outbox_db --conn-json ")
    end = script.index("\n", script.index("')\"", start))
    line = script[start:end].replace(
        "/entrypoint airflow connections add outbox_db --conn-json ", "printf %s "
    )
    env = {"PATH": os.environ["PATH"], **service_env(services["airflow-init"]), **env_overrides}
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # `python` as in the image
    done = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    parsed = json.loads(done.stdout)
    assert isinstance(parsed, dict)
    return parsed


def kafka_default_connection(services: Services) -> dict[str, Any]:
    parsed = json.loads(service_env(services["airflow-scheduler"])["AIRFLOW_CONN_KAFKA_DEFAULT"])
    assert isinstance(parsed, dict)
    return parsed


# --------------------------------------------------------------------------- the helper itself


def test_resolve_defaults_takes_defaults_and_unescapes_dollars() -> None:
    assert resolve_defaults("${MYSQL_USER:-outbox}") == "outbox"
    assert resolve_defaults("${A-x}/${B}/${C:-}") == "x//"
    assert resolve_defaults('-p"$${MYSQL_ROOT_PASSWORD}"') == '-p"${MYSQL_ROOT_PASSWORD}"'
    assert resolve_defaults("${PIP:-a==1 b>=2}") == "a==1 b>=2"
    assert resolve_defaults("plain") == "plain"


# --------------------------------------------------------------------------- services


def test_required_services_are_defined(services: Services) -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"services missing from docker-compose.yml: {missing}"


def test_pinned_infrastructure_images(services: Services) -> None:
    assert resolve_defaults(services["mysql"]["image"]) == "mysql:8.4"
    assert resolve_defaults(services["postgres"]["image"]) == "postgres:16"
    kafka_image = resolve_defaults(services["kafka"]["image"])
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka_image), kafka_image


def test_airflow_common_anchor_is_defined(compose: dict[str, Any]) -> None:
    common = compose.get("x-airflow-common")
    assert isinstance(common, dict), "x-airflow-common extension (the shared anchor) is missing"
    assert resolve_defaults(common["image"]) == AIRFLOW_IMAGE


def test_the_airflow_image_is_built_from_the_dockerfile_at_the_locked_versions(
    compose: dict[str, Any],
) -> None:
    """One recipe for the image (./Dockerfile), built once, instead of packages installed at every start;
    its default Airflow and Python are the ones this project is developed and tested on."""
    build = compose["x-airflow-common"]["build"]
    assert build["context"] == "." and build.get("dockerfile", "Dockerfile") == "Dockerfile"
    args = {key: resolve_defaults(str(value)) for key, value in build["args"].items()}
    locked = dict(
        line.split("==")
        for line in (REPO_ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line
    )
    assert args["AIRFLOW_VERSION"] == locked["apache-airflow"]
    assert args["PYTHON_VERSION"] == "3.11"
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE_FILE.read_text(), "packages belong in the image"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_uses_common_image_and_env(
    compose: dict[str, Any], services: Services, name: str
) -> None:
    service = services[name]
    image = resolve_defaults(service["image"])
    assert image == AIRFLOW_IMAGE, f"{name} runs {image!r}, expected the image built from ./Dockerfile"

    env = service_env(service)
    common_env = service_env(compose["x-airflow-common"])
    for key, value in common_env.items():
        assert env.get(key) == value, f"{name}: {key} differs from x-airflow-common"

    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"  # unless AIRFLOW_EXECUTOR says otherwise
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"].lower() == "false"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert "@postgres/" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("SimpleAuthManager")
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"], f"{name}: empty JWT secret"
    assert env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
    # The relay comes from the image: no source folders on the path, no plugins folder to copy into; the
    # service configs are found in Airflow's DAG folder.
    assert "PYTHONPATH" not in env and "OUTBOX_RELAY_SERVICES_DIR" not in env

    targets = {target: (source, ro) for source, target, ro in bind_mounts(service)}
    assert targets["/opt/airflow/dags"][0] == "./dags"
    assert set(targets) == {"/opt/airflow/dags", "/opt/airflow/logs"}, targets


@pytest.mark.parametrize("key", ["AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"])
def test_airflow_secrets_are_shared(services: Services, key: str) -> None:
    secrets = {service_env(services[name]).get(key) for name in AIRFLOW_SERVICES}
    assert len(secrets) == 1 and None not in secrets, f"every Airflow component must use the same {key}"


def test_the_dag_processor_re_parses_the_generated_dags_every_five_minutes(services: Services) -> None:
    """Re-parsing every 30 s (Airflow's default) is most of an idle event-driven service's cost."""
    env = service_env(services["airflow-dag-processor"])
    assert env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] == "300"


def test_jwt_secret_is_long_enough_for_hs512(services: Services) -> None:
    secret = service_env(services["airflow-scheduler"])["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert len(secret.encode()) >= 64, f"HS512 wants a 64-byte key, the default has {len(secret.encode())}"


def test_airflow_commands(services: Services) -> None:
    assert services["airflow-apiserver"]["command"] == "api-server"
    assert services["airflow-scheduler"]["command"] == "scheduler"
    assert services["airflow-dag-processor"]["command"] == "dag-processor"
    assert services["airflow-triggerer"]["command"] == "triggerer"
    assert published_ports(services["airflow-apiserver"]) == {8080: 8080}


def test_airflow_init_migrates_the_metadata_db(services: Services) -> None:
    init = services["airflow-init"]
    env = service_env(init)
    # The image entrypoint runs `airflow db migrate` when _AIRFLOW_DB_MIGRATE is set ...
    assert env.get("_AIRFLOW_DB_MIGRATE", "").lower() == "true"
    # ... which only happens if the script actually goes through the entrypoint.
    script = init["command"] if isinstance(init["command"], str) else "\n".join(init["command"])
    assert "/entrypoint airflow" in script


def test_airflow_init_creates_the_order_services_tables_with_the_package(services: Services) -> None:
    """The tables come from the installed package's DDL (`outbox-relay ddl`), for a service of the DAG
    folder: what a user of the image does, instead of SQL files mounted into MySQL's first start."""
    script = init_script(services)
    found = re.search(r"/entrypoint outbox-relay ddl --service (\w+) --apply", script)
    assert found, script
    assert (REPO_ROOT / "dags" / "services" / f"{found[1]}.yaml").is_file()
    assert script.index("connections add outbox_db") < found.start(), "the tables need the connection first"
    assert not any(
        target.startswith("/docker-entrypoint-initdb.d") for _, target, _ in bind_mounts(services["mysql"])
    )


# --------------------------------------------------------------------------- connections


def test_outbox_db_connection_points_at_mysql_service(services: Services) -> None:
    conn = outbox_db_connection(services)
    assert conn["conn_type"] == "outbox"  # the provider's type: the UI's form and Test button
    assert conn["host"] in services, f"outbox_db host {conn['host']!r} is not a compose service"
    assert services[conn["host"]] is services["mysql"]
    assert int(conn["port"]) == 3306


@pytest.mark.parametrize("password", ['pa"ss', "back\\slash", "it's", "$HOME `id` $(id)", "ünï cødé"])
def test_outbox_db_connection_survives_any_password(services: Services, password: str) -> None:
    assert outbox_db_connection(services, OUTBOX_DB_PASSWORD=password)["password"] == password


def test_only_airflow_init_sees_the_mysql_password(services: Services) -> None:
    password = service_env(services["mysql"])["MYSQL_PASSWORD"]
    for name in LONG_RUNNING_AIRFLOW_SERVICES:
        env = service_env(services[name])
        assert "AIRFLOW_CONN_OUTBOX_DB" not in env, f"{name}: outbox_db is stored by airflow-init"
        assert password not in env.values(), f"{name} needs no MySQL password"


def test_outbox_db_connection_matches_mysql_credentials(services: Services) -> None:
    conn = outbox_db_connection(services)
    mysql_env = service_env(services["mysql"])
    assert mysql_env["MYSQL_DATABASE"] == "outbox"
    assert conn["schema"] == mysql_env["MYSQL_DATABASE"]
    assert conn["login"] == mysql_env["MYSQL_USER"]
    assert conn["password"] == mysql_env["MYSQL_PASSWORD"]
    assert mysql_env["MYSQL_USER"] != "root", "the mysql image refuses MYSQL_USER=root"
    assert mysql_env["MYSQL_ROOT_PASSWORD"], "the mysql image needs a root password"


def test_kafka_connection_uses_internal_advertised_listener(services: Services) -> None:
    conn = kafka_default_connection(services)
    assert conn["conn_type"] == "kafka"
    bootstrap = conn["extra"]["bootstrap.servers"]

    kafka_env = service_env(services["kafka"])
    advertised = listener_map(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    bound = listener_map(kafka_env["KAFKA_LISTENERS"])
    by_address = {f"{host}:{port}": name for name, (host, port) in advertised.items()}
    assert bootstrap in by_address, f"{bootstrap!r} is not one of the advertised listeners {advertised}"

    listener = by_address[bootstrap]
    host, port = advertised[listener]
    kafka_hostnames = {"kafka", services["kafka"].get("hostname", "kafka")}
    assert host in kafka_hostnames, f"containers must reach Kafka by its service name, not {host!r}"
    assert bound[listener][1] == port, f"listener {listener} binds {bound[listener]} but advertises {port}"


# --------------------------------------------------------------------------- kafka


def test_kafka_is_single_node_kraft(services: Services) -> None:
    env = service_env(services["kafka"])
    roles = {role.strip() for role in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}

    node_id = env["KAFKA_NODE_ID"]
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1
    voter_id, _, voter_address = voters[0].partition("@")
    assert voter_id == node_id

    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    bound = listener_map(env["KAFKA_LISTENERS"])
    assert controller in bound
    assert voter_address.rpartition(":")[2] == str(bound[controller][1])
    assert controller not in listener_map(env["KAFKA_ADVERTISED_LISTENERS"])

    protocols = dict(item.split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(bound) <= set(protocols), "every listener needs a security protocol"
    assert env.get("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT") in bound


def test_kafka_single_replica_internal_topics_and_no_auto_create(services: Services) -> None:
    env = service_env(services["kafka"])
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false"
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"


def test_kafka_host_listener_is_published(services: Services) -> None:
    env = service_env(services["kafka"])
    advertised = listener_map(env["KAFKA_ADVERTISED_LISTENERS"])
    bound = listener_map(env["KAFKA_LISTENERS"])
    host_listeners = [name for name, address in advertised.items() if address == ("localhost", 29092)]
    assert host_listeners, "no listener is advertised as localhost:29092"
    container_port = bound[host_listeners[0]][1]
    assert published_ports(services["kafka"]).get(29092) == container_port


# --------------------------------------------------------------------------- mysql


def test_mysql_data_lives_in_a_volume(services: Services) -> None:
    mounts = {target: source for source, target, _ in bind_mounts(services["mysql"])}
    assert mounts.get("/var/lib/mysql") == "mysql-data"


# --------------------------------------------------------------------------- wiring


def test_every_depends_on_target_is_a_service(services: Services) -> None:
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        for target, condition in depends_on_map(service).items():
            assert target in services, f"{name} depends on undefined service {target!r}"
            assert target != name, f"{name} depends on itself"
            assert condition in conditions, f"{name} -> {target}: unknown condition {condition!r}"
            if condition == "service_healthy":
                assert services[target].get("healthcheck"), f"{name} waits for {target}'s missing healthcheck"


@pytest.mark.parametrize("name", AIRFLOW_SERVICES)
def test_airflow_service_waits_for_backing_services(services: Services, name: str) -> None:
    deps = depends_on_map(services[name])
    for backing in ("postgres", "mysql", "kafka"):
        assert deps.get(backing) == "service_healthy", f"{name} must wait for {backing} to be healthy"
    if name == "airflow-init":
        assert "airflow-init" not in deps
    else:
        assert deps.get("airflow-init") == "service_completed_successfully"


def test_bind_mount_sources_exist_and_named_volumes_are_declared(
    compose: dict[str, Any], services: Services
) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    for name, service in services.items():
        for source, target, _ in bind_mounts(service):
            if not source:
                continue
            if is_path_source(source):
                assert source.startswith("./"), f"{name}: bind mount {source} should be repo-relative"
                assert (REPO_ROOT / source).exists(), f"{name}: bind-mount source {source} does not exist"
            else:
                assert source in declared, f"{name}: named volume {source!r} (-> {target}) is not declared"


@pytest.mark.parametrize("name", ["mysql", "kafka", "postgres", "airflow-apiserver", "airflow-scheduler"])
def test_healthcheck_present(services: Services, name: str) -> None:
    healthcheck = services[name].get("healthcheck")
    assert isinstance(healthcheck, dict) and healthcheck.get("test"), f"{name} has no healthcheck"
    assert not healthcheck.get("disable", False)


def test_healthcheck_commands(services: Services) -> None:
    def command(name: str) -> str:
        test = services[name]["healthcheck"]["test"]
        return resolve_defaults(test if isinstance(test, str) else " ".join(test))

    assert "mysqladmin ping" in command("mysql")
    assert "kafka-broker-api-versions.sh" in command("kafka")
    assert "pg_isready" in command("postgres")
    assert "http://localhost:8080/api/v2/" in command("airflow-apiserver")
    assert "http://localhost:8974/health" in command("airflow-scheduler")
    assert service_env(services["airflow-scheduler"])["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "true"


def test_the_celery_profile_runs_workers_on_redis(compose: dict[str, Any], services: Services) -> None:
    """`AIRFLOW_EXECUTOR=CeleryExecutor docker compose --profile celery up --scale airflow-worker=2`."""
    raw = compose["x-airflow-common"]["environment"]
    assert raw["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    redis, worker = services["redis"], services["airflow-worker"]
    assert re.fullmatch(r"redis:7\.\d+", resolve_defaults(redis["image"])) and redis["profiles"] == ["celery"]
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert worker["profiles"] == ["celery"] and worker["command"] == "celery worker"
    assert resolve_defaults(worker["image"]) == AIRFLOW_IMAGE
    env, common = service_env(worker), service_env(compose["x-airflow-common"])
    assert {k: v for k, v in env.items() if k in common} == common and env["DUMB_INIT_SETSID"] == "0"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    backend = env["AIRFLOW__CELERY__RESULT_BACKEND"]
    assert backend == "db+" + env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "")
    deps = depends_on_map(worker)
    assert deps["redis"] == "service_healthy" and deps["airflow-init"] == "service_completed_successfully"
    assert all(deps.get(b) == "service_healthy" for b in ("postgres", "mysql", "kafka"))
    assert "celery_executor.app inspect ping" in " ".join(worker["healthcheck"]["test"])
    # The pins the workers install are the lock's.
    lock = (REPO_ROOT / "requirements.lock").read_text()
    for pin in ("apache-airflow-providers-celery==3.26.0", "statsd==4.0.1"):
        assert pin in lock.splitlines()
