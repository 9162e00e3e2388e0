"""Wait until a just-started Airflow api-server really answers, not merely accepts connections.

Its first request to the execution API makes Cadwyn build the versioned routes, synchronously on the
server's only event loop: 5-7 s on an idle 2-core machine, more than 30 s under load, and every other
request (a login, a task's heartbeat) waits behind it. The Outbox page likewise imports on its first
request. Asking both once here puts that one-time work before "Airflow is up" is announced.

Usage: ``python include/devstack/api_ready.py PORT [SECONDS]`` (exit 1 naming what did not answer).
"""

from __future__ import annotations

import sys
import time

import httpx

# The execution API's health route, and the Outbox page (401 without a login is an answer too).
PATHS = ("/execution/health", "/outbox/")


def wait_until_answering(port: int, seconds: float = 300.0) -> None:
    """Return once every path in PATHS answered with any HTTP status; raise TimeoutError naming the first
    one that did not within `seconds` (one shared deadline)."""
    deadline = time.monotonic() + seconds
    for path in PATHS:
        url = f"http://127.0.0.1:{port}{path}"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"the Airflow api-server on port {port} did not answer {url} within {seconds:.0f}s"
                )
            try:
                httpx.get(url, timeout=left)
                break
            except httpx.TransportError:
                time.sleep(0.5)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or not argv[1].isdigit():
        print("usage: api_ready.py PORT [SECONDS]", file=sys.stderr)
        return 2
    try:
        wait_until_answering(int(argv[1]), float(argv[2]) if len(argv) == 3 else 300.0)
    except (TimeoutError, ValueError) as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
