"""The CLI's exit statuses, decided in one place from what a command returned or raised.

* 0: done (or a dry run);
* 1: a finding (rows missing from the topic, a discrepancy, a row not found, a problem ``validate``
  found), or the database or broker failed;
* 2: bad arguments or configuration (an unknown service, a bad value: the message names it);
* 130: cancelled with Ctrl-C.
"""

from __future__ import annotations

import sys

from outbox_relay.errors import ConfigurationError, DiscrepancyError, InfrastructureError

OK = 0
FOUND = 1  # a finding the command reports
UNAVAILABLE = 1  # the database or the broker failed (the documented status shares 1 with findings)
USAGE = 2
CANCELLED = 130

CAUGHT = (ConfigurationError, LookupError, InfrastructureError, DiscrepancyError, KeyboardInterrupt)


def exit_status(exc: BaseException, cancelled: str = "cancelled") -> int:
    """Say on stderr what went wrong, and the status it exits with."""
    if isinstance(exc, KeyboardInterrupt):
        print(cancelled, file=sys.stderr)
        return CANCELLED
    print(f"error: {exc}", file=sys.stderr)
    if isinstance(exc, ConfigurationError | LookupError):
        return USAGE
    return FOUND if isinstance(exc, DiscrepancyError) else UNAVAILABLE
