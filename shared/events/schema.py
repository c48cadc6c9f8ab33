"""JSON Schema of the published language, generated from the event models and checked into the repo.

``python -m shared.events.schema`` writes one ``<ce_type>.schema.json`` per registered event, current
(``EVENT_TYPES``) or superseded but still in the log (``legacy.LEGACY_TYPES``), into
``shared/events/schemas/``; ``tests/unit/test_event_schemas.py`` fails when a model changed without
regenerating them, so a contract change is always visible in review. Subscribers validate the CloudEvents
``data`` (the Kafka record value) against the file named by the ``ce_type`` header.

Two names for one schema (docs/events.md "Schemas"):
- ``$id`` (``schema_id``) is the schema's stable name, a URN, the same in every deployment and release:
  the checked-in file cannot depend on where it is served, and a URL that nobody serves would mislead
  tools that fetch by ``$id``;
- ``ce_dataschema`` (``dataschema_uri``) is where this deployment serves the same file: every service
  answers ``GET /schemas/events/{file}`` (``shared.web.ops``) from ``published_schema``, under the base
  URL ``RENJA_SCHEMA_BASE_URL`` (``shared.settings``).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from shared.events import EVENT_TYPES
from shared.events.legacy import LEGACY_TYPES

SCHEMA_DIR = Path(__file__).parent / "schemas"
SCHEMA_ID_PREFIX = "urn:renja:schema:"
SCHEMA_ROUTE = "/schemas/events/"
"""The path under which every service serves the checked-in schema files (``shared.web.ops``)."""
SCHEMA_MEDIA_TYPE = "application/schema+json"


def schema_file_name(event_type: str) -> str:
    """``renja.Signed.v1`` → ``renja.Signed.v1.schema.json`` (in ``SCHEMA_DIR`` and under ``SCHEMA_ROUTE``)."""
    return f"{event_type}.schema.json"


def schema_id(event_type: str) -> str:
    """The schema's ``$id``: a stable absolute URI naming it, e.g. ``urn:renja:schema:renja.Signed.v1``."""
    return f"{SCHEMA_ID_PREFIX}{event_type}"


def dataschema_uri(event_type: str, base_url: str) -> str:
    """Where ``base_url`` (a deployment's ``RENJA_SCHEMA_BASE_URL``, e.g. ``http://127.0.0.1:8106``)
    serves the schema: the records' CloudEvents ``dataschema`` attribute."""
    return f"{base_url.rstrip('/')}{SCHEMA_ROUTE}{schema_file_name(event_type)}"


@cache
def _published() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in SCHEMA_DIR.glob("*.schema.json")}


def published_schema(file_name: str) -> bytes | None:
    """The bytes of the checked-in schema file ``file_name`` (e.g. ``renja.Signed.v1.schema.json``), or
    None when no such file is published. Looked up by exact name among the files, never joined to a path,
    so no name (``..``, ``/``, ``%2F``) reaches outside ``SCHEMA_DIR``."""
    return _published().get(file_name)


def schema_for(event_type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event type's data (current or legacy version), with ``$id``,
    ``title`` and ``$comment``. Raises ``KeyError`` for a type of neither registry.

    Only standard keywords (no ``x-`` extensions), so validators in strict mode (Ajv) compile it as is;
    the CloudEvents type is the ``title`` and is repeated in ``$comment``.
    """
    model = EVENT_TYPES.get(event_type) or LEGACY_TYPES[event_type]
    schema = model.model_json_schema(mode="serialization")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_id(event_type),
        "$comment": f"CloudEvents type {event_type}: the data (Kafka record value) of this event type",
        **schema,
        "title": event_type,
    }


def rendered() -> dict[str, str]:
    """File name → file text for every event type, current or legacy (stable key order, trailing newline)."""
    return {
        schema_file_name(event_type): json.dumps(schema_for(event_type), indent=2, ensure_ascii=False) + "\n"
        for event_type in sorted({*EVENT_TYPES, *LEGACY_TYPES})
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
