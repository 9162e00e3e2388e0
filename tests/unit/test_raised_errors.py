"""Every error the product raises on purpose is an ``OutboxRelayError`` (so callers, the CLI's exit statuses
and the tasks' retry rules can tell it from a bug), except where a protocol prescribes the built-in type."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [
    ROOT / "include" / "outbox_relay",
    ROOT / "include" / "outbox_inbox",
    ROOT / "plugins" / "outbox_relay_airflow",
]
BUILTIN_ERRORS = {
    n
    for n in dir(builtins)
    if isinstance(getattr(builtins, n), type) and issubclass(getattr(builtins, n), BaseException)
}
# Where the built-in type is the protocol: pydantic turns a validator's ValueError into a field error (the
# config models and the operator requests), and json's default= and parse_constant= hooks must raise
# TypeError / ValueError; the claim decoder refuses to be imported when the row layout changed under it.
PROTOCOL = {
    ("include/outbox_relay/store/claim.py", "ImportError"),
    ("include/outbox_relay/config", "ValueError"),
    ("include/outbox_relay/requests", "ValueError"),
    ("include/outbox_relay/relay/messages.py", "TypeError"),
    ("include/outbox_relay/relay/messages.py", "ValueError"),
}


def _raised_builtins(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and node.exc is not None:
            target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(target, ast.Name) and target.id in BUILTIN_ERRORS - {
                "NotImplementedError",
                "SystemExit",
            }:
                found.append((node.lineno, target.id))
    return found


def test_every_error_raised_on_purpose_is_an_outbox_relay_error() -> None:
    offending = []
    for package in PRODUCT:
        for path in sorted(package.rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for line, name in _raised_builtins(path):
                if not any(relative.startswith(where) and name == kind for where, kind in PROTOCOL):
                    offending.append(f"{relative}:{line} raises {name}")
    assert offending == [], "raise an outbox_relay.errors class instead:\n" + "\n".join(offending)
