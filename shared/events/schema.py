"""JSON Schema of the published language, generated from the event models and checked into the repo.

``python -m shared.events.schema`` writes one ``<ce_type>.schema.json`` per registered event into
``shared/events/schemas/``; ``tests/unit/test_event_schemas.py`` fails when a model changed without
regenerating them, so a contract change is always visible in review. Subscribers validate the CloudEvents
``data`` (the Kafka record value) against the file named by the ``ce_type`` header.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shared.events import EVENT_TYPES

SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_BASE_URI = "https://renja.example.go.id/schemas/events/"


def dataschema_uri(event_type: str) -> str:
    """The schema's ``$id`` for one event type: the records' CloudEvents ``dataschema`` attribute."""
    return f"{SCHEMA_BASE_URI}{event_type}.schema.json"


def schema_for(event_type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event type's data, with ``$id``, ``title`` and ``$comment``.

    Only standard keywords (no ``x-`` extensions), so validators in strict mode (Ajv) compile it as is;
    the CloudEvents type is the ``title`` and is repeated in ``$comment``.
    """
    model = EVENT_TYPES[event_type]
    schema = model.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": dataschema_uri(event_type),
        "$comment": f"CloudEvents type {event_type}: the data (Kafka record value) of this event type",
        **schema,
        "title": event_type,
    }


def rendered() -> dict[str, str]:
    """File name → file text for every registered event type (stable key order, trailing newline)."""
    return {
        f"{event_type}.schema.json": json.dumps(schema_for(event_type), indent=2, ensure_ascii=False) + "\n"
        for event_type in sorted(EVENT_TYPES)
    }


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    files = rendered()
    for stale in SCHEMA_DIR.glob("*.schema.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (SCHEMA_DIR / name).write_text(text, encoding="utf-8")
    sys.stdout.write(f"wrote {len(files)} schemas to {SCHEMA_DIR}\n")


if __name__ == "__main__":
    main()
