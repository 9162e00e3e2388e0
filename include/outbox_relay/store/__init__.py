"""The only place with SQL: naming and quoting, locks, the claim query and its decoder, outbox updates,
retry state, retention, reconciliation and inbox queries, introspection, engines and DDL."""
