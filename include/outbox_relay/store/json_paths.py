"""A JSON path of ``json_values`` evaluated by the relay, for servers that cannot do it in SQL (MySQL
raises error 3157 for documents nested deeper than 100 levels, failing the whole claim). Gives what
``JSON_UNQUOTE(JSON_EXTRACT(...))`` / ``JSON_EXTRACT(...)`` give: None where the document is not JSON or
the path is missing."""

from __future__ import annotations

import json
import re
from typing import Any

_STEP = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\."([^"]+)"|\[([0-9]+)\]')


def steps(path: str) -> list[str | int]:
    """``$.a."b c"[0]`` -> ['a', 'b c', 0]; paths are validated by the config (``check_json_path``)."""
    found: list[str | int] = []
    for name, quoted, index in _STEP.findall(path[1:]):
        found.append(int(index) if index else (name or quoted))
    return found


def value_at(document: Any, path: str, unquote: bool) -> str | None:
    """The value at ``path`` in ``document`` (JSON text or bytes): a string as it is (``unquote``) or
    anything else as JSON text."""
    if document is None:
        return None
    try:
        value = json.loads(document)
    except (ValueError, RecursionError):
        return None
    for step in steps(path):
        if not _has(value, step):
            return None
        value = value[step]
    if unquote and isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _has(value: Any, step: str | int) -> bool:
    if isinstance(step, int):
        return isinstance(value, list) and step < len(value)
    return isinstance(value, dict) and step in value
