"""A sharded service's relay DAG maps one relay task per shard; its health check adds their figures up."""

from __future__ import annotations

from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay_airflow.dag_factory import relay_dag
from outbox_relay_airflow.tasks.relay import merged_topics, relay_stats


def _config(**fields: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({"service": "hot", "topic": "t", **fields})


def test_one_mapped_relay_task_per_shard() -> None:
    sharded = relay_dag(_config(shards=4)).get_task("relay")
    assert sharded.is_mapped
    assert sharded.op_kwargs_expand_input.value == {"shard": [0, 1, 2, 3]}  # type: ignore[attr-defined]
    assert not relay_dag(_config()).get_task("relay").is_mapped
    assert [t.task_id for t in relay_dag(_config(shards=4)).topological_sort()] == [
        "ensure_topics", "relay", "announce_topics", "check_health",
    ]  # fmt: skip


def test_a_sharded_run_announces_its_topics_once_after_the_shards() -> None:
    """Shards emitting the first event of a topic at the same moment race to create its asset in Airflow's
    metadata DB, and the loser's task fails: only ``announce_topics`` has the outlet."""
    sharded, single = relay_dag(_config(shards=4)), relay_dag(_config())
    assert not sharded.get_task("relay").outlets
    assert [o.name for o in sharded.get_task("announce_topics").outlets] == ["outbox_hot_published"]
    assert [o.name for o in single.get_task("relay").outlets] == ["outbox_hot_published"]
    assert "announce_topics" not in single.task_ids


def test_the_shards_topic_tallies_add_up() -> None:
    shards = [
        {"topics": {"a": {"rows": 3, "first_row_id": 5, "last_row_id": 9}}},
        {"topics": {"a": {"rows": 2, "first_row_id": 2, "last_row_id": 7}, "b": {"rows": 1, "first_row_id": 4,
                                                                               "last_row_id": 4}}},
        {"skipped": "shard 3 of a service with 2 shard(s)", "shard": 3},
        None,
    ]  # fmt: skip
    assert merged_topics(shards) == {
        "a": {"rows": 5, "first_row_id": 2, "last_row_id": 9},
        "b": {"rows": 1, "first_row_id": 4, "last_row_id": 4},
    }
    assert merged_topics(None) == {}


def test_the_health_check_adds_the_shards_figures_up() -> None:
    shards = [{"failed": 1, "published": 10, "stopped_because": "drained"}, {"failed": 2, "published": 5}]
    assert relay_stats(shards) == {"failed": 3, "published": 15}
    assert relay_stats({"failed": 4}) == {"failed": 4}
    assert relay_stats(None) == {}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"shards": 3}, "shards must be one of 1, 2, 4, 8, 16, 32, 64, got 3"),
        ({"shards": 128}, "shards must be one of"),
        (
            {"shards": 2, "columns": {"id": "id", "status": "s", "payload": "p"}},
            "shards spreads rows by their key",
        ),
        (
            {"columns": {"id": "id", "status": "s", "payload": "p", "key": "k", "shard": "sh"}},
            "columns.shard is read by sharded relays only: set shards (2, 4, ... 64) or unmap it",
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
