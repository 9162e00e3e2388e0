"""Does 127.0.0.1:PORT answer Kafka's Metadata request? The broker scripts ask before starting one, so that a
healthy Kafka-compatible broker someone else started (another checkout's, a git worktree's) is used as it
is, and only a port held by something else is an error.

Usage: ``python include/devstack/kafka_probe.py PORT [SECONDS]``: prints the broker ids and exits 0, or
prints what failed and exits 1.
"""

from __future__ import annotations

import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient


def describe(port: int, seconds: float = 5.0) -> str:
    """The brokers that answered (raises KafkaException when none did within ``seconds``)."""
    admin = AdminClient(
        {"bootstrap.servers": f"127.0.0.1:{port}", "socket.timeout.ms": int(seconds * 1000), "log_level": 0}
    )
    metadata = admin.list_topics(timeout=seconds)
    return ", ".join(f"broker {b.id} at {b.host}:{b.port}" for b in metadata.brokers.values())


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not argv[1].isdigit():
        print("usage: kafka_probe.py PORT [SECONDS]", file=sys.stderr)
        return 2
    try:
        print(describe(int(argv[1]), float(argv[2]) if len(argv) == 3 else 5.0))
    except KafkaException as exc:
        print(f"no Kafka Metadata answer from 127.0.0.1:{argv[1]}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
