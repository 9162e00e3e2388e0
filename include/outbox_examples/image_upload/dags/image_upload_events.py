"""Image upload events: an Airflow DAG draining the bucket's S3 notifications (SQS) into Kafka.

Thin on purpose: the task bodies live in outbox_examples/image_upload/airflow_dag.py. This file is
not in the project's dags/ folder: copy it into your DAGs folder to register the example.
"""

from outbox_examples.image_upload.airflow_dag import image_events_dag

dag = image_events_dag()
