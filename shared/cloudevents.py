"""CloudEvents 1.0 in Kafka *binary content mode*: our events to Kafka records and back.

Invariants:
- key = Renja id (UTF-8), so every event of one Renja lands in one partition, in log order;
- headers ``ce_id``, ``ce_source``, ``ce_type``, ``ce_specversion`` (``1.0``), ``ce_time`` (RFC 3339, UTC),
  ``ce_subject`` (= Renja id), ``ce_dataschema`` (where this deployment serves the data's JSON Schema:
  ``RENJA_SCHEMA_BASE_URL`` + ``/schemas/events/<ce_type>.schema.json``), ``content-type:
  application/json``, W3C ``traceparent`` (and ``tracestate``, beside it) when known;
- readers are tolerant (unknown fields ignored, unknown types skippable), the envelope is checked strictly;
  an old version of a type is carried up to the current model (``shared.events.versions``) before it is
  validated, so a reader never meets an old version's model.
- the value is the event's JSON (``model_dump(mode="json")``), which repeats the envelope fields so a
  consumer that ignores headers still has the whole fact.

The mapping is written out here (a few header assignments on the hot path) rather than routed through the
``cloudevents`` SDK objects; ``tests/unit/test_cloudevents.py`` proves that the official SDK parses what we
produce and that we parse what the SDK produces.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from shared.events import EVENT_TYPES, UPCASTERS, Event, UnknownEventType, read_tolerantly, upcast
from shared.events.schema import dataschema_uri
from shared.settings import schema_base_url

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"
STRUCTURED_PREFIX = "application/cloudevents"
"""``application/cloudevents+json`` (and batches): structured content mode, which Renja does not use."""
SOURCE_PREFIX = "/renja/"
SIGNATURE_HEADER = "ce_signature"
"""CloudEvents extension ``signature``: the producer's Ed25519 signature, base64 (``shared.origin``)."""
SIGNATURE_KEY_ID_HEADER = "ce_signaturekeyid"
"""CloudEvents extension ``signaturekeyid``: the id of the key that signed, in the key registry."""
TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

Headers = list[tuple[str, bytes]]
_BYTES = (bytes, bytearray)


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One record as aiokafka sends it: ``key``/``value`` bytes and a header list."""

    key: bytes
    value: bytes
    headers: Headers


class DecodeError(ValueError):
    """A Kafka record is not one of our CloudEvents. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    @property
    def skippable(self) -> bool:
        """True for an event type this release does not know: a tolerant reader skips it (a newer
        producer's event), it is not a broken record for the dead-letter topic."""
        return self.reason == "unknown_type"


def source_uri(service: str) -> str:
    """CloudEvents ``source`` for a producing service, e.g. ``/renja/documents``."""
    return f"{SOURCE_PREFIX}{service}"


def encode_data(event: Event) -> bytes:
    """The event's JSON data (UTF-8), as stored in the outbox and sent as the record value."""
    return event.model_dump_json().encode()


def build_headers(
    *,
    event_id: UUID | str,
    source: str,
    event_type: str,
    time: datetime | str,
    subject: UUID | str,
    traceparent: str | None = None,
    dataschema_base: str | None = None,
    tracestate: str | None = None,
) -> Headers:
    """CloudEvents binary-mode headers for one event (``time`` as RFC 3339 UTC; ``ce_dataschema`` under
    ``dataschema_base``, by default this process's ``RENJA_SCHEMA_BASE_URL``)."""
    time_text = time if isinstance(time, str) else time.isoformat().replace("+00:00", "Z")
    headers: Headers = [
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_id", str(event_id).encode()),
        ("ce_source", source_uri(source).encode()),
        ("ce_type", event_type.encode()),
        ("ce_time", time_text.encode()),
        ("ce_subject", str(subject).encode()),
        ("ce_dataschema", dataschema_uri(event_type, dataschema_base or schema_base_url()).encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if traceparent and TRACEPARENT_RE.match(traceparent):
        headers.append(("traceparent", traceparent.encode()))
        if tracestate:  # W3C: a tracestate travels only beside its traceparent
            headers.append(("tracestate", tracestate.encode()))
    return headers


def to_kafka(event: Event, traceparent: str | None = None) -> KafkaRecord:
    """Encode ``event`` as a binary-mode CloudEvents Kafka record."""
    return KafkaRecord(
        key=str(event.renja_id).encode(),
        value=encode_data(event),
        headers=build_headers(
            event_id=event.event_id,
            source=event.source,
            event_type=event.event_type,
            time=event.occurred_at,
            subject=event.renja_id,
            traceparent=traceparent,
        ),
    )


OUTBOX_COLUMNS = (
    "seq, event_id, stream_id, event_type, source, occurred_at, data::text AS data,"
    " headers->>'traceparent' AS traceparent, headers->>'tracestate' AS tracestate,"
    " payload, signature, signature_key_id"
)
"""The ``events`` columns :func:`record_from_row` needs, for ``SELECT {OUTBOX_COLUMNS} FROM events ...``."""


def record_from_row(
    row: Any,
    dataschema_base: str | None = None,
    *,
    traceparent: str | None = None,
    tracestate: str | None = None,
) -> KafkaRecord:
    """The Kafka record of one stored ``events`` row (selected with ``OUTBOX_COLUMNS``): the one way the
    relay, a publish-on-commit path or a republish turn a stored event into what goes on the log.

    The value is the stored ``payload`` (the exact bytes that were signed at append time; for a row
    stored before signing, its ``data`` as text), the headers those of :func:`build_headers` plus the
    stored ``ce_signaturekeyid``/``ce_signature`` when the row has them. Sending the same row twice sends
    the same bytes and the same signature. ``traceparent``/``tracestate`` (the relay's publish span)
    replace the stored trace context, which the signature does not cover.
    """
    payload = row["payload"]
    headers = build_headers(
        event_id=row["event_id"],
        source=row["source"],
        event_type=row["event_type"],
        time=row["occurred_at"],
        subject=row["stream_id"],
        traceparent=traceparent or row["traceparent"],
        tracestate=tracestate or row["tracestate"],
        dataschema_base=dataschema_base,
    )
    if row["signature"] is not None:
        headers += [
            (SIGNATURE_KEY_ID_HEADER, row["signature_key_id"].encode()),
            (SIGNATURE_HEADER, row["signature"].encode()),
        ]
    return KafkaRecord(
        key=str(row["stream_id"]).encode(),
        value=bytes(payload) if payload is not None else row["data"].encode(),
        headers=headers,
    )


def header_map(headers: Any) -> dict[str, str]:
    """Kafka headers (a sequence of ``(str, bytes)``) as a dict of text; undecodable values raise."""
    out: dict[str, str] = {}
    name = ""
    try:  # one try around the loop, and a prebuilt type tuple: this runs for every record consumed
        for name, value in headers or ():
            out[name] = value.decode() if isinstance(value, _BYTES) else str(value)
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_header", f"header {name!r} is not UTF-8") from exc
    return out


def from_kafka(key: bytes | None, value: bytes | None, headers: Any) -> Event:
    """Decode one record into our event model, as a tolerant reader of a strict contract.

    An old version's data is upcast first (``shared.events.upcast``) and returned as the current model.
    Fields the model does not know are ignored (a newer producer may add them); everything else is
    checked: the envelope headers, the Kafka key, ``ce_subject`` and ``ce_time`` against the data.
    Raises ``DecodeError`` with ``reason`` one of ``structured_mode``, ``missing_header``,
    ``bad_specversion``, ``bad_header``, ``unknown_type`` (``skippable``: a type this release does not
    know), ``not_json``, ``bad_schema``, ``missing_key``, ``header_mismatch``.
    """
    h = header_map(headers)
    media_type = _media_type(h.get("content-type"))
    if media_type is not None and media_type.startswith(STRUCTURED_PREFIX):
        raise DecodeError(
            "structured_mode",
            f"content-type {h['content-type']!r} is a structured-mode CloudEvent; Renja records are binary mode "
            "(ce_* headers, value = the event data as application/json)",
        )
    for required in ("ce_id", "ce_source", "ce_type", "ce_specversion"):
        if not h.get(required):
            raise DecodeError("missing_header", f"required CloudEvents header {required!r} is absent")
    if h["ce_specversion"] != SPECVERSION:
        raise DecodeError("bad_specversion", f"ce_specversion {h['ce_specversion']!r} is not 1.0")
    if media_type is not None and media_type != CONTENT_TYPE:
        raise DecodeError("bad_header", f"content-type {h['content-type']!r} is not application/json")
    if h["ce_type"] in UPCASTERS:
        event = _validate_slowly(h["ce_type"], value)
        _check_envelope(event, key, h)
        return event
    model = EVENT_TYPES.get(h["ce_type"])
    if model is None:
        raise DecodeError("unknown_type", str(UnknownEventType(f"unknown event type {h['ce_type']!r}")))
    try:
        # Fast path: pydantic-core parses and validates the bytes in one pass (no Python dict in between).
        event = model.model_validate_json(value or b"")
    except ValidationError:
        # Slow path, only for records the fast path refused: unknown fields are dropped (tolerant reader),
        # and what is still wrong is named (not_json / bad_schema); it also accepts what ``json.loads``
        # alone accepts (e.g. UTF-16, a BOM).
        event = _validate_slowly(h["ce_type"], value)
    _check_envelope(event, key, h)
    return event


def _media_type(content_type: str | None) -> str | None:
    """The media type of a ``content-type`` value, lower case, without parameters (None if absent)."""
    if content_type is None:
        return None
    return content_type.split(";")[0].strip().lower()


def _check_envelope(event: Event, key: bytes | None, h: dict[str, str]) -> None:
    """The record's key and CloudEvents attributes must say what the data says (``header_mismatch``)."""
    if str(event.event_id) != h["ce_id"] or source_uri(event.source) != h["ce_source"]:
        raise DecodeError("header_mismatch", "ce_id/ce_source do not match the event data")
    if key is None:
        # Without the Renja id as key a record may land on any partition: its order is lost.
        raise DecodeError("missing_key", "the record has no Kafka key; the key must be the event's Renja id")
    if key.decode(errors="replace") != str(event.renja_id):
        raise DecodeError("header_mismatch", "Kafka key is not the event's Renja id")
    subject = h.get("ce_subject")
    if subject is not None and subject != str(event.renja_id):
        raise DecodeError("header_mismatch", "ce_subject is not the event's Renja id")
    time_text = h.get("ce_time")
    if time_text is not None:
        try:
            time = datetime.fromisoformat(time_text)
        except ValueError as exc:
            raise DecodeError("bad_header", f"ce_time {time_text!r} is not an RFC 3339 timestamp") from exc
        if time.tzinfo is None or time != event.occurred_at:
            raise DecodeError("header_mismatch", f"ce_time {time_text!r} is not the event's occurred_at")


def _validate_slowly(ce_type: str, value: bytes | None) -> Event:
    """``json.loads``, ``upcast`` (an old version), then ``model_validate`` as the current model of a known
    ``ce_type``: the reference decoding, with its ``DecodeError`` reasons."""
    try:
        data = json.loads(value or b"")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DecodeError("not_json", f"value is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DecodeError("bad_schema", "value is JSON but not an object")
    current, data = upcast(ce_type, data)
    try:
        return read_tolerantly(EVENT_TYPES[current], data)
    except ValidationError as exc:
        raise DecodeError("bad_schema", f"{ce_type}: {exc.errors(include_url=False)}") from exc
