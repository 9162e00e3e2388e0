"""The only place with SQL: naming and quoting, locks, the claim query and its decoder, outbox updates,
retry state, backlog figures, the row history, replay, retention, reconciliation and inbox queries,
introspection, engines (``connect``) and DDL. Callers reach a service's outbox table through its
``OutboxStore`` (``store.outbox``; the glue and the inbox library through ``outbox_relay.database``)."""
