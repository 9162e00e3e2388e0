"""Which folder holds the service files: one answer for the DAG processor, the tasks, the triggerer, the
Outbox page and the CLI. The folder given (a DAG file's ``register_outbox_dags(..., services_dir=...)``, the
CLI's ``--services-dir``), else ``$OUTBOX_RELAY_SERVICES_DIR``, else ``services`` in Airflow's DAG folder
(``[core] dags_folder``), which is where ``outbox-relay init`` puts it.
"""

from __future__ import annotations

import os
from pathlib import Path

from outbox_relay.config import ServiceConfig
from outbox_relay.config.loader import SERVICES_DIR_ENV, LoadedServices, load_service, load_services

FOLDER_NAME = "services"


def services_folder(given: str | Path | None = None) -> tuple[Path, str]:
    """The folder, and where its name came from (named in the error when it does not exist)."""
    if given is not None:
        return Path(given), "the folder given"
    env = os.environ.get(SERVICES_DIR_ENV)
    if env:
        return Path(env), f"the folder ${SERVICES_DIR_ENV} names"
    from airflow.configuration import conf

    dags_folder = Path(os.path.expanduser(conf.get("core", "dags_folder")))
    origin = (
        f"'{FOLDER_NAME}' in Airflow's DAG folder, [core] dags_folder; set ${SERVICES_DIR_ENV} to the folder "
        "of the service configs if they are elsewhere"
    )
    return dags_folder / FOLDER_NAME, origin


def read_services(given: str | Path | None = None) -> LoadedServices:
    """Every service in the folder, with the errors of the invalid files."""
    folder, origin = services_folder(given)
    return load_services(folder, origin)


def read_service(name: str, given: str | Path | None = None) -> ServiceConfig:
    """One service's config, read now (a task sees the file as it is when it runs)."""
    return load_service(name, services_folder(given)[0])
