import sys

from outbox_relay_airflow.cli import main

sys.exit(main())
