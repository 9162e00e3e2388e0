"""What a delivery report hands the callback about its message, for fake producers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ReportedMessage:
    """The parts of confluent-kafka's ``Message`` the publisher reads from a delivery report."""

    sent_topic: str
    sent_key: bytes | None
    sent_value: bytes | None
    sent_headers: Any

    def topic(self) -> str:
        return self.sent_topic

    def key(self) -> bytes | None:
        return self.sent_key

    def value(self) -> bytes | None:
        return self.sent_value

    def headers(self) -> Any:
        return self.sent_headers
