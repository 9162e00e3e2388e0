"""The relay's own reading of json_values paths gives what MySQL's JSON_EXTRACT would."""

from __future__ import annotations

import pytest

from outbox_relay.store.json_paths import steps, value_at

DOC = '{"Headers": {"cap-msg-id": "m1", "n": 5, "ok": true}, "Value": {"items": [{"sku": "a"}, "b"], "none": null}}'


def test_steps_of_a_path() -> None:
    assert steps('$.Headers."cap-msg-id"') == ["Headers", "cap-msg-id"]
    assert steps("$.Value.items[1]") == ["Value", "items", 1]


@pytest.mark.parametrize(
    ("path", "unquote", "expected"),
    [
        ('$.Headers."cap-msg-id"', True, "m1"),
        ('$.Headers."cap-msg-id"', False, '"m1"'),
        ("$.Headers.n", True, "5"),
        ("$.Headers.ok", True, "true"),
        ("$.Value.none", True, None),  # JSON null is no value (a key, an id), as the claim's SQL reads it
        ("$.Value.none", False, "null"),
        ("$.Value.items[0]", False, '{"sku": "a"}'),
        ("$.Value.items[1]", True, "b"),
        ("$.Value.items[2]", True, None),
        ("$.Value.missing", True, None),
        ("$.Headers.n.deeper", True, None),
        ("$.Value[0]", True, None),
    ],
)
def test_values_like_json_extract(path: str, unquote: bool, expected: str | None) -> None:
    assert value_at(DOC, (path,), unquote) == expected


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        (('$.Headers."cap-kafka-key"', '$.Headers."cap-msg-id"'), "m1"),  # absent: the next one
        (("$.Value.none", "$.Headers.n"), "5"),  # null: the next one
        (("$.Headers.n", '$.Headers."cap-msg-id"'), "5"),  # the first present wins
        (("$.Value.none", "$.Value.missing"), None),
    ],
)
def test_places_tried_in_order(paths: tuple[str, ...], expected: str | None) -> None:
    assert value_at(DOC, paths, True) == expected


def test_no_document_or_not_json_gives_none() -> None:
    assert value_at(None, ("$.a",), True) is None
    assert value_at("{not json", ("$.a",), True) is None
    assert value_at(b'{"a": "\\u00fc"}', ("$.a",), True) == "ü"
    deep = "[" * 500 + "1" + "]" * 500
    assert value_at(f'{{"v": {deep}}}', ("$.v",), False) == deep  # beyond MySQL's 100 levels
