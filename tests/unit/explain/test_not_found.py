"""Asked about a row the table no longer holds, the answer says where acknowledged rows go."""

from __future__ import annotations

from outbox_relay.config import ServiceConfig
from outbox_relay.explain import not_found


def _config(**fields: object) -> ServiceConfig:
    return ServiceConfig.model_validate({"service": "s", "topic": "t", **fields})


def test_where_rows_go() -> None:
    prefix = "service s: no row of outbox_message has message id or id 'm1'"
    assert not_found(_config(completion="delete"), "m1") == (
        f"{prefix} (completion: delete removes each row once the broker acknowledged it; the topic keeps the message)"
    )
    assert "completion: archive moves each row to done once" in not_found(
        _config(completion="archive", archive_table="done"), "m1"
    )
    assert not_found(_config(), "m1") == (
        f"{prefix} (retention deletes finished rows after 7 days; the topic keeps the message)"
    )
    assert not_found(_config(retention=None), "m1") == prefix
