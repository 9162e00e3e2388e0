"""Launching relay processes and building service configs for the fault tests."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from tests.conftest import ROOT

# Tight timeouts so a broker outage fails a run in seconds, not minutes.
FAST_KAFKA = {"delivery_timeout_ms": 3000, "flush_timeout_seconds": 4}


def config_document(topic: str, **fields: Any) -> dict[str, Any]:
    document: dict[str, Any] = {"service": "orders", "topic": topic, "batch_size": 50, "kafka": FAST_KAFKA}
    document.update(fields)
    return document


def service(topic: str, **fields: Any) -> ServiceConfig:
    return ServiceConfig.model_validate(config_document(topic, **fields))


def db_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def spawn(engine: Engine, bootstrap: str, config: dict[str, Any], **spec: Any) -> subprocess.Popen[str]:
    """Start ``tests.faults.relay_process`` with this spec; stdout carries its stats as JSON."""
    document = {"url": db_url(engine), "bootstrap": bootstrap, "config": config, **spec}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.relay_process", json.dumps(document)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(child: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    out, err = child.communicate(timeout=timeout)
    assert child.returncode == 0, err[-3000:]
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result
