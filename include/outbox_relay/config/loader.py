"""Load service YAML files, turning every problem into an error that names file and field."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError, MissingConfigurationError

SERVICES_DIR_ENV = "OUTBOX_RELAY_SERVICES_DIR"
CONFIG_SUFFIXES = (".yaml", ".yml")

# libyaml's parser when PyYAML was built with it (its wheels are): the DAG processor loads every service
# file twice on each re-parse, and the C parser takes about a tenth of the pure-Python one's time.
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ServiceFileError(ConfigurationError):
    """A service config that cannot be used; the message names the file and each bad field."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


@dataclass(frozen=True)
class LoadedServices:
    services: dict[str, ServiceConfig]
    errors: list[ServiceFileError]


def default_services_dir() -> Path | None:
    """``$OUTBOX_RELAY_SERVICES_DIR``; None when unset (the Airflow glue then reads ``services`` in
    Airflow's DAG folder and says so)."""
    env = os.environ.get(SERVICES_DIR_ENV)
    return Path(env) if env else None


def _field_path(loc: Iterable[int | str]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(error: Any) -> str:
    field = _field_path(error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown field (check the spelling against the configuration reference)"
    if error["type"] == "missing":
        message = "required field is missing"
    return f"field '{field}': {message}"


def _unbuildable_field(text: str) -> str | None:
    """The field whose value YAML cannot build (``safe_load`` does not say which one)."""

    def walk(node: yaml.Node, name: str) -> str | None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                found = walk(value, f"{name}.{key.value}" if name else str(key.value))
                if found:
                    return found
            return None
        try:
            yaml.SafeLoader("").construct_document(node)
        except (ValueError, TypeError, RecursionError, yaml.YAMLError):
            return name or None
        return None

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    return None if root is None else walk(root, "")


def parse_service_config(path: Path) -> ServiceConfig:
    """Read and validate one file, raising ``ServiceFileError`` with every problem found."""
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceFileError(path, [f"cannot read file: {exc}"]) from None
    except yaml.YAMLError as exc:
        raise ServiceFileError(path, [f"invalid YAML: {exc}".replace("\n", " ")]) from None
    except (ValueError, TypeError, RecursionError) as exc:  # a value YAML cannot build, e.g. 2001-13-01
        field = _unbuildable_field(path.read_text(encoding="utf-8"))
        where = f"field '{field}': " if field else ""
        raise ServiceFileError(path, [f"{where}invalid YAML value: {exc}"]) from None
    if not isinstance(document, dict):
        kind = type(document).__name__
        raise ServiceFileError(path, [f"expected a mapping of settings at the top level, got {kind}"])
    document.setdefault("service", path.stem)
    try:
        config = ServiceConfig.model_validate(document)
    except ValidationError as exc:
        raise ServiceFileError(path, [_describe(e) for e in exc.errors()]) from None
    if config.service != path.stem:
        raise ServiceFileError(
            path, [f"field 'service': {config.service!r} must equal the file name {path.stem!r}"]
        )
    return config


def config_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())


def _missing_folder(folder: Path | None, origin: str) -> ServiceFileError:
    if folder is None:
        return ServiceFileError(
            Path(f"${SERVICES_DIR_ENV}"),
            [f"not set and no folder given: set ${SERVICES_DIR_ENV} to the folder of the service configs"],
        )
    return ServiceFileError(folder, [f"no such folder ({origin}): no service is loaded"])


def _folder(directory: Path | None, origin: str | None) -> tuple[Path | None, str]:
    """The folder to read, and where its name came from (for the error when it does not exist)."""
    if directory is not None:
        return directory, origin or "the folder given"
    return default_services_dir(), f"the folder ${SERVICES_DIR_ENV} names"


def load_services(directory: Path | None = None, origin: str | None = None) -> LoadedServices:
    """Load every config in the folder; a bad file is reported, never fatal for the others. ``origin`` says
    where ``directory`` came from, for the error when it does not exist."""
    services: dict[str, ServiceConfig] = {}
    folder, origin = _folder(directory, origin)
    # A mistyped setting must not look like "no services registered".
    if folder is None or not folder.is_dir():
        return LoadedServices({}, [_missing_folder(folder, origin)])
    errors: list[ServiceFileError] = []
    for path in config_files(folder):
        try:
            config = parse_service_config(path)
        except ServiceFileError as exc:
            errors.append(exc)
            continue
        services[config.service] = config
    return LoadedServices(services=services, errors=errors)


def load_service(name: str, directory: Path | None = None) -> ServiceConfig:
    """The named service's config, re-read at task run time so a running task sees the current file."""
    folder, _origin = _folder(directory, None)
    if folder is None:
        raise MissingConfigurationError(str(_missing_folder(None, "")))
    for suffix in CONFIG_SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return parse_service_config(path)
    raise MissingConfigurationError(f"no config for service {name!r} in {folder} (expected {name}.yaml)")
