# syntax=docker/dockerfile:1
# Airflow with the outbox relay installed: the official image plus this project's wheel. This is the
# "custom image" of the README's "Install into your Airflow"; docker-compose.yml builds it too.
#
#   docker build -t my-airflow:outbox .
#   docker build --build-arg AIRFLOW_VERSION=3.2.0 --build-arg PYTHON_VERSION=3.12 -t my-airflow:outbox .
#
# The relay's DAG files and service configs are not in the image: they live in the DAG folder
# (`outbox-relay init /opt/airflow/dags`), mounted or synced as your deployment does it.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11

# --- the wheel, built from this checkout ----------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY include/ include/
COPY plugins/ plugins/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

# --- the Airflow image ----------------------------------------------------------------------------
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION
# Extras of the package, e.g. "[celery]" (the official image already has the Celery provider).
ARG OUTBOX_RELAY_EXTRAS=""
COPY --from=wheel /dist/ /tmp/outbox-relay/
# As the official image's docs say: install as the airflow user, and name apache-airflow at the image's
# own version so that pip never upgrades or downgrades Airflow while resolving the relay's ranges.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" \
      "$(ls /tmp/outbox-relay/airflow_outbox_relay-*.whl)${OUTBOX_RELAY_EXTRAS}" \
 && outbox-relay --help > /dev/null
