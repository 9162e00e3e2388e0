"""The consumers' side: an idempotent consumer that dedupes with an inbox table and answers on a result topic."""
