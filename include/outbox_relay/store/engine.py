"""Kept only for the fault tests (tests/faults) and docs/consumer.md, which import ``make_engine`` from
here: engines are made by ``store.connect`` (public: ``outbox_relay.database``). Delete this module once
they import from there."""

from outbox_relay.store.connect import make_engine

__all__ = ["make_engine"]
