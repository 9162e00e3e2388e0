"""The watching triggers of one triggerer share their clients: one engine per database connection and one
admin client per Kafka connection, whatever the number of services, closed with the last trigger."""

from __future__ import annotations

from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay_airflow import triggers
from tests.unit.kafka.test_lag import FakeAdmin


class Counting:
    """A ``_SharedClients`` whose opener and closer are counted."""

    def __init__(self) -> None:
        self.opened: list[Any] = []
        self.closed: list[Any] = []
        self.shared = triggers._SharedClients(self._open, self.closed.append)

    def _open(self, key: Any) -> Any:
        self.opened.append(key)
        return FakeAdmin({0: (0, 4)}, {0: 1}) if isinstance(key, str) else object()


def test_one_client_per_key_until_its_last_user_lets_go() -> None:
    clients = Counting()
    first, again, other = (clients.shared.acquire(k) for k in ("kafka_a", "kafka_a", "kafka_b"))
    assert first is again and first is not other
    assert clients.opened == ["kafka_a", "kafka_b"]
    clients.shared.release("kafka_a")
    assert clients.closed == []  # still used by one trigger
    clients.shared.release("kafka_a")
    assert clients.closed == [first]
    assert clients.shared.acquire("kafka_a") is not first  # the next user opens a fresh one


def _probes(monkeypatch: pytest.MonkeyPatch, clients: str, probe: Any) -> tuple[Counting, list[Any]]:
    """Probes of services a, b (database 1) and c (database 2), all on Kafka connection 1, with the shared
    ``clients`` of ``triggers`` counted."""
    configs = {
        name: ServiceConfig.model_validate(
            {
                "service": name,
                "topic": "t",
                "confirmation": {"topic": f"{name}.acks"},
                "connections": {"db": db, "kafka": kafka},
            }
        )
        for name, db, kafka in (("a", "db_1", "kafka_1"), ("b", "db_1", "kafka_1"), ("c", "db_2", "kafka_1"))
    }
    counted = Counting()
    monkeypatch.setattr(triggers, clients, counted.shared)
    return counted, [probe(configs[name]) for name in "abc"]


def test_services_on_one_database_connection_watch_through_one_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    engines, probes = _probes(monkeypatch, "ENGINES", triggers._RowsProbe)
    assert engines.opened == [("db_1", "+00:00"), ("db_2", "+00:00")]
    assert probes[0].engine is probes[1].engine is not probes[2].engine
    for probe in probes:
        probe.close()
    assert len(engines.closed) == 2


def test_services_on_one_kafka_connection_ask_through_one_admin_client_each_for_its_own_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    admins, probes = _probes(monkeypatch, "ADMIN_CLIENTS", triggers._LagProbe)
    assert admins.opened == ["kafka_1"]
    assert [probe.look() for probe in probes] == [(1,)] * 3  # 3 of 4 messages wait: the mark is (1,)
    (admin,) = {id(probe.admin): probe.admin for probe in probes}.values()
    assert admin.groups == [probe.group for probe in probes] and len(set(admin.groups)) == 3
    for probe in probes:
        probe.close()
    assert admins.closed == [admin]


def test_kafka_admin_clients_are_kept_for_the_life_of_the_triggerer() -> None:
    """Never freed, so never destroyed by whichever thread frees them (see ``triggers.ADMIN_CLIENTS``):
    the last trigger letting go keeps the client, and the next one gets that same client."""
    kept = Counting()
    kept.shared = triggers._SharedClients(kept._open, None)
    first = kept.shared.acquire("kafka_a")
    kept.shared.release("kafka_a")
    assert kept.shared.acquire("kafka_a") is first and kept.opened == ["kafka_a"]
    assert triggers.ADMIN_CLIENTS._close is None
    assert (
        triggers.ENGINES._close is not None
    )  # a pool of pure-Python connections is let go with its last user
