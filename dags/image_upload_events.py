"""Image upload events: an Airflow DAG draining the bucket's S3 notifications (SQS) into Kafka.

Thin on purpose: the task bodies live in plugins/outbox_relay_airflow/image_events.py.
"""

from outbox_relay_airflow.image_events import image_events_dag

dag = image_events_dag()
