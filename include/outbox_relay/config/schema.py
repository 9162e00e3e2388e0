"""The service file's JSON Schema, for editors (YAML language servers validate and complete with it).

``dags/services/service.schema.json`` is generated from the models by ``outbox-relay schema``; a test
keeps the committed copy equal to the models, so the editor never disagrees with the loader.
"""

from __future__ import annotations

import json
from typing import Any

from outbox_relay.config.service import ServiceConfig

SCHEMA_ID = "https://github.com/airflow-outbox-relay/airflow-outbox-relay/service.schema.json"


def service_schema() -> dict[str, Any]:
    schema = ServiceConfig.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "Outbox relay service"
    # The loader fills 'service' from the file name when it is absent.
    schema["required"] = [name for name in schema.get("required", []) if name != "service"]
    return schema


def service_schema_text() -> str:
    return json.dumps(service_schema(), indent=2, sort_keys=True) + "\n"
