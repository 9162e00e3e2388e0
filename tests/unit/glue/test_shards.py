"""A sharded service's relay DAG maps one relay task per shard; its health check adds their figures up."""

from __future__ import annotations

from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay_airflow.dag_factory import relay_dag
from outbox_relay_airflow.tasks import _relay_stats


def _config(**fields: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({"service": "hot", "topic": "t", **fields})


def test_one_mapped_relay_task_per_shard() -> None:
    sharded = relay_dag(_config(shards=4)).get_task("relay")
    assert sharded.is_mapped
    assert sharded.op_kwargs_expand_input.value == {"shard": [0, 1, 2, 3]}  # type: ignore[attr-defined]
    assert not relay_dag(_config()).get_task("relay").is_mapped
    assert [t.task_id for t in relay_dag(_config(shards=4)).topological_sort()] == [
        "ensure_topics", "relay", "check_health",
    ]  # fmt: skip


def test_the_health_check_adds_the_shards_figures_up() -> None:
    shards = [{"failed": 1, "published": 10, "stopped_because": "drained"}, {"failed": 2, "published": 5}]
    assert _relay_stats(shards) == {"failed": 3, "published": 15}
    assert _relay_stats({"failed": 4}) == {"failed": 4}
    assert _relay_stats(None) == {}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"shards": 3}, "shards must be one of 1, 2, 4, 8, 16, 32, 64, got 3"),
        ({"shards": 128}, "shards must be one of"),
        (
            {"shards": 2, "columns": {"id": "id", "status": "s", "payload": "p"}},
            "shards spreads rows by their key",
        ),
    ],
)
def test_bad_shard_settings_are_named(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as caught:
        _config(**fields)
    assert words in str(caught.value)


def test_a_shard_owns_the_lock_buckets_of_its_keys() -> None:
    four = _config(shards=4)
    assert four.shard_buckets(1) == tuple(range(1, 64, 4))
    assert four.shard_buckets(None) == tuple(range(64))
    assert set(_config(shards=2).shard_buckets(1)) >= set(
        four.shard_buckets(3)
    )  # overlapping: shared buckets
    assert not set(_config(shards=2).shard_buckets(0)) & set(four.shard_buckets(3))
    with pytest.raises(ValueError, match="service 'hot' has 4 shard"):
        four.shard_buckets(4)
