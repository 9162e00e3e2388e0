"""A JSON path of ``json_values`` evaluated by the relay, for servers that cannot do it in SQL (MySQL
raises error 3157 for documents nested deeper than 100 levels, failing the whole claim). Gives what the
claim's SQL gives: None where the document is not JSON or no path has a value."""

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


def value_at(document: Any, paths: tuple[str, ...], unquote: bool) -> str | None:
    """The value in ``document`` (JSON text or bytes) as the claim's SQL reads it (``_json_sql``): as text
    (``unquote``), the first of ``paths`` present and not JSON null, a string as it is and anything else as
    JSON text; as JSON, the value at the one path."""
    if document is None:
        return None
    try:
        parsed = json.loads(document)
    except (ValueError, RecursionError):
        return None
    for path in paths if unquote else paths[:1]:
        found, value = _walk(parsed, path)
        if not found or (unquote and value is None):
            continue
        if unquote and isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)
    return None


def _walk(value: Any, path: str) -> tuple[bool, Any]:
    for step in steps(path):
        if not _has(value, step):
            return False, None
        value = value[step]
    return True, value


def _has(value: Any, step: str | int) -> bool:
    if isinstance(step, int):
        return isinstance(value, list) and step < len(value)
    return isinstance(value, dict) and step in value
