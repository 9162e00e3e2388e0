"""Where the test and benchmark services are (environment, with the Makefile's defaults). No side
effects on import, unlike tests/conftest.py, so the benchmark can use it too."""

from __future__ import annotations

import os
import shutil

DB_SERVER_URL = os.environ.get("OUTBOX_TEST_DB_URL", "mysql+pymysql://root@127.0.0.1:3306")
BOOTSTRAP = os.environ.get("OUTBOX_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
# Which broker BOOTSTRAP is (the Makefile's BROKER): kafka (Apache Kafka) or tansu.
BROKER = os.environ.get("BROKER") or ("kafka" if shutil.which("java") else "tansu")
