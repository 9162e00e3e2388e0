"""Order -> inventory: the classic outbox scenario used by ``make demo``."""
