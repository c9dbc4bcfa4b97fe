"""Normalize every message shape that can arrive on an ingest queue into source references.

Pure and stdlib only: no I/O, no AWS SDK. :func:`parse_message` takes a queue message body and
returns the objects it names, as :class:`SourceRef`; a body that is not one of the known shapes
raises :class:`InvalidMessage`, so the caller can dead-letter it instead of retrying it forever.

Shapes accepted (checked in this order):

1. ``s3:TestEvent`` (``{"Service": "Amazon S3", "Event": "s3:TestEvent", ...}``), sent once when
   a notification configuration is saved: no sources.
2. An SNS notification (``{"Type": "Notification", "Message": "<json>"}``), i.e. an S3 event sent
   through an SNS topic to an SQS queue without raw message delivery: unwrapped once, then parsed
   as any of the other shapes.
3. An EventBridge event from S3 (``"source": "aws.s3"``): ``"detail-type": "Object Created"``
   gives one source; every other S3 detail-type gives none.
4. An S3 event notification (``{"Records": [...]}``) from AWS (``eventSource: "aws:s3"``) or
   MinIO (``"minio:s3"``). Only ``ObjectCreated:*`` records give sources. MinIO's envelope for
   webhook, Kafka, NATS, MQTT, AMQP and the like adds top-level ``EventName`` (``EventType`` in
   old releases) and ``Key`` (``"bucket/key"``); the ``Records`` win over ``Key``.
5. MinIO's Redis "access" format: a JSON list of ``{"Event": [records], "EventTime": ...}``.
6. modscan's own message: ``{"bucket": ..., "key": ..., "version_id"?: ..., "scan_id"?: ...}``.

Key encoding, per source:

* AWS S3 notification records: the key is form-urlencoded (``"red flower.jpg"`` arrives as
  ``"red+flower.jpg"``, a literal ``+`` as ``%2B``), as the AWS "Event message structure" page
  says (docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
  Decoded with :func:`urllib.parse.unquote_plus`.
* EventBridge ``detail.object.key``: the AWS page for this envelope (".../ev-events.html") does
  not say either way. AWS's own consumers treat it as form-urlencoded like the notification key:
  Powertools for AWS Lambda (Python) decodes it with ``unquote_plus``
  (``S3EventBridgeNotificationObject.key`` in ``utilities/data_classes/s3_event.py``), OpenSearch
  Data Prepper's S3 source with ``SdkHttpUtils.urlDecode`` (``getUrlDecodedKey``), and
  LocalStack, whose S3 notifications are validated against AWS, emits the same URL-encoded key
  for EventBridge as for SQS/SNS/Lambda. So it is decoded with ``unquote_plus`` too.
* MinIO records: ``url.QueryEscape`` of the name (space -> ``+``, ``/`` -> ``%2F``;
  ``cmd/event-notification.go``), decoded with ``unquote_plus``. MinIO's top-level ``Key`` is
  already decoded (``bucket + "/" + url.QueryUnescape(record key)`` in
  ``internal/event/target/webhook.go``), so it is taken verbatim.
* modscan's own message: taken verbatim; modscan writes real keys.

Percent-escapes that do not decode to UTF-8 are rejected rather than replaced with U+FFFD, so a
mangled key fails here instead of later as a missing object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

__all__ = ["InvalidMessage", "SourceRef", "parse_message", "source_identity"]

_S3_TEST_EVENT = "s3:TestEvent"
_RECORD_SOURCES = frozenset({"aws:s3", "minio:s3"})
_CREATED_PREFIX = "ObjectCreated:"
_EVENTBRIDGE_CREATED = "Object Created"
_OWN_FIELDS = frozenset({"bucket", "key", "version_id", "scan_id"})
# MinIO releases before bucket versioning hard-coded versionId "1" in every record
# (``VersionID: "1"`` in cmd/event-notification.go). Real MinIO version ids are UUIDs, so "1"
# names no version: passing it on to GetObject would fail, and using it as the identity would
# make every later upload to the same key look like a duplicate.
_MINIO_PLACEHOLDER_VERSION = "1"


class InvalidMessage(ValueError):
    """A queue message that is not one of the shapes :func:`parse_message` accepts."""


@dataclass(frozen=True)
class SourceRef:
    """One object in a bucket that a message asks modscan to scan."""

    bucket: str
    key: str  # decoded: the key to pass to GetObject
    version_id: str | None = None
    etag: str | None = None  # without surrounding quotes
    size: int | None = None
    sequencer: str | None = None
    scan_id: int | None = None  # only from modscan's own message


def source_identity(ref: SourceRef) -> tuple[str, str, str]:
    """Return ``(bucket, key, version)`` identifying the source object a ref points at.

    ``version`` is the version id if there is one, else the ETag, else ``""``. Duplicate
    deliveries of one event carry the same values, so they map to the same identity.
    """
    return (ref.bucket, ref.key, ref.version_id or ref.etag or "")


def parse_message(body: str | bytes | dict[str, Any]) -> list[SourceRef]:
    """Return the sources named by one queue message body, in message order.

    ``body`` is the raw body (``bytes`` are decoded as UTF-8) or an already-decoded JSON
    object. Returns ``[]`` for messages that are valid but name nothing to scan (the S3 test
    event, removals and other non-create events). Raises :class:`InvalidMessage`, saying what
    was wrong, for anything else.
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidMessage(f"message body is not valid UTF-8: {exc}") from exc
        return _parse_document(_load_json(text, "message body"), sns_unwrapped=False)
    if isinstance(body, str):
        return _parse_document(_load_json(body, "message body"), sns_unwrapped=False)
    if isinstance(body, dict):
        return _parse_document(body, sns_unwrapped=False)
    raise InvalidMessage(f"message body must be str, bytes or dict, got {type(body).__name__}")


# --- shape dispatch ----------------------------------------------------------------------------


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError, or a NaN/Infinity constant
        raise InvalidMessage(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise InvalidMessage(f"{what} is nested too deeply") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _parse_document(doc: Any, *, sns_unwrapped: bool) -> list[SourceRef]:
    if isinstance(doc, list):
        return _parse_minio_access_list(doc)
    if not isinstance(doc, dict):
        raise InvalidMessage(f"message must be a JSON object, got {_json_type(doc)}")
    if doc.get("Event") == _S3_TEST_EVENT:
        return []
    if doc.get("Type") == "Notification" or "TopicArn" in doc:
        return _parse_sns(doc, sns_unwrapped=sns_unwrapped)
    if doc.get("source") == "aws.s3":
        return _parse_eventbridge(doc)
    if "Records" in doc or "EventName" in doc or "EventType" in doc:
        return _parse_records_envelope(doc)
    if "bucket" in doc or "key" in doc:
        return [_parse_own(doc)]
    keys = ", ".join(sorted(str(k) for k in doc)) or "none"
    raise InvalidMessage(f"message matches no known shape (top-level keys: {keys})")


def _parse_sns(doc: dict[str, Any], *, sns_unwrapped: bool) -> list[SourceRef]:
    if sns_unwrapped:
        raise InvalidMessage("SNS notification nested inside another SNS notification")
    kind = doc.get("Type")
    if kind != "Notification":
        raise InvalidMessage(f"SNS message of Type {kind!r} carries no S3 event")
    inner = doc.get("Message")
    if not isinstance(inner, str):
        raise InvalidMessage(
            f"SNS notification Message must be a JSON string, got {_json_type(inner)}"
        )
    return _parse_document(_load_json(inner, "SNS notification Message"), sns_unwrapped=True)


# --- EventBridge -------------------------------------------------------------------------------


def _parse_eventbridge(doc: dict[str, Any]) -> list[SourceRef]:
    detail_type = _required_str(doc, "detail-type", "EventBridge event")
    if detail_type != _EVENTBRIDGE_CREATED:
        return []
    detail = _required_dict(doc, "detail", "EventBridge event")
    bucket = _required_dict(detail, "bucket", "detail")
    obj = _required_dict(detail, "object", "detail")
    return [
        SourceRef(
            bucket=_required_str(bucket, "name", "detail.bucket"),
            key=_decode_key(_required_str(obj, "key", "detail.object"), "detail.object.key"),
            version_id=_optional_str(obj, "version-id", "detail.object"),
            etag=_etag(_optional_str(obj, "etag", "detail.object")),
            size=_optional_size(obj, "size", "detail.object"),
            sequencer=_optional_str(obj, "sequencer", "detail.object"),
        )
    ]


# --- S3 / MinIO records ------------------------------------------------------------------------


def _parse_records_envelope(doc: dict[str, Any]) -> list[SourceRef]:
    records = doc.get("Records")
    if records is not None and not isinstance(records, list):
        raise InvalidMessage(f"Records must be a list, got {_json_type(records)}")
    top_key = _optional_str(doc, "Key", "message")
    event_name = _optional_str(doc, "EventName", "message") or _optional_str(
        doc, "EventType", "message"
    )
    if records:
        # MinIO's envelope repeats the record's object in Key; the Records win.
        return _parse_records(records, "Records")
    if top_key is None:
        if records is None:
            raise InvalidMessage("MinIO event has neither Records nor Key")
        return []
    # A MinIO envelope with no records: fall back to Key, which MinIO has already decoded.
    if event_name is None:
        raise InvalidMessage("MinIO event has a Key but no EventName")
    if not _is_created(event_name):
        return []
    bucket, sep, key = top_key.partition("/")
    if not (sep and bucket and key):
        raise InvalidMessage(f"MinIO Key must be 'bucket/key', got {top_key!r}")
    return [SourceRef(bucket=bucket, key=key)]


def _parse_minio_access_list(doc: list[Any]) -> list[SourceRef]:
    if not doc:
        raise InvalidMessage("message is an empty JSON list")
    refs: list[SourceRef] = []
    for i, entry in enumerate(doc):
        where = f"[{i}]"
        if not isinstance(entry, dict) or "Event" not in entry:
            raise InvalidMessage(
                f"JSON list message must hold MinIO access entries {{'Event': [...]}}; "
                f"{where} is {_json_type(entry)}"
                + (" without 'Event'" if isinstance(entry, dict) else "")
            )
        events = entry["Event"]
        if not isinstance(events, list):
            raise InvalidMessage(f"{where}.Event must be a list, got {_json_type(events)}")
        refs.extend(_parse_records(events, f"{where}.Event"))
    return refs


def _parse_records(records: list[Any], where: str) -> list[SourceRef]:
    refs: list[SourceRef] = []
    for i, record in enumerate(records):
        path = f"{where}[{i}]"
        if not isinstance(record, dict):
            raise InvalidMessage(f"{path} must be an object, got {_json_type(record)}")
        source = _required_str(record, "eventSource", path)
        if source not in _RECORD_SOURCES:
            raise InvalidMessage(
                f"{path}.eventSource {source!r} is not an S3 event (expected aws:s3 or minio:s3)"
            )
        if not _is_created(_required_str(record, "eventName", path)):
            continue
        s3 = _required_dict(record, "s3", path)
        bucket = _required_dict(s3, "bucket", f"{path}.s3")
        obj = _required_dict(s3, "object", f"{path}.s3")
        opath = f"{path}.s3.object"
        version_id = _optional_str(obj, "versionId", opath)
        if source == "minio:s3" and version_id == _MINIO_PLACEHOLDER_VERSION:
            version_id = None
        refs.append(
            SourceRef(
                bucket=_required_str(bucket, "name", f"{path}.s3.bucket"),
                key=_decode_key(_required_str(obj, "key", opath), f"{opath}.key"),
                version_id=version_id,
                etag=_etag(_optional_str(obj, "eTag", opath)),
                size=_optional_size(obj, "size", opath),
                sequencer=_optional_str(obj, "sequencer", opath),
            )
        )
    return refs


def _is_created(event_name: str) -> bool:
    # AWS records say "ObjectCreated:Put"; MinIO records and envelopes say "s3:ObjectCreated:Put".
    return event_name.removeprefix("s3:").startswith(_CREATED_PREFIX)


# --- modscan's own message ---------------------------------------------------------------------


def _parse_own(doc: dict[str, Any]) -> SourceRef:
    unknown = sorted(str(k) for k in doc if k not in _OWN_FIELDS)
    if unknown:
        raise InvalidMessage(f"modscan message has unknown fields: {', '.join(unknown)}")
    scan_id = doc.get("scan_id")
    if scan_id is not None and (type(scan_id) is not int or scan_id < 1):
        raise InvalidMessage(f"modscan message scan_id must be a positive integer, got {scan_id!r}")
    return SourceRef(
        bucket=_required_str(doc, "bucket", "modscan message"),
        key=_required_str(doc, "key", "modscan message"),
        version_id=_optional_str(doc, "version_id", "modscan message"),
        scan_id=scan_id,
    )


# --- field helpers -----------------------------------------------------------------------------


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _required_dict(obj: dict[str, Any], field: str, where: str) -> dict[str, Any]:
    if field not in obj:
        raise InvalidMessage(f"{where} is missing {field!r}")
    value = obj[field]
    if not isinstance(value, dict):
        raise InvalidMessage(f"{where}.{field} must be an object, got {_json_type(value)}")
    return value


def _required_str(obj: dict[str, Any], field: str, where: str) -> str:
    if field not in obj or obj[field] is None:
        raise InvalidMessage(f"{where} is missing {field!r}")
    value = obj[field]
    if not isinstance(value, str):
        raise InvalidMessage(f"{where}.{field} must be a string, got {_json_type(value)}")
    if not value:
        raise InvalidMessage(f"{where}.{field} is empty")
    return value


def _optional_str(obj: dict[str, Any], field: str, where: str) -> str | None:
    """A string field that may be absent, null or "" (MinIO sends "" for unknown values)."""
    value = obj.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidMessage(f"{where}.{field} must be a string, got {_json_type(value)}")
    return value or None


def _optional_size(obj: dict[str, Any], field: str, where: str) -> int | None:
    value = obj.get(field)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise InvalidMessage(f"{where}.{field} must be a non-negative integer, got {value!r}")
    return value


def _etag(value: str | None) -> str | None:
    if value is not None and len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return value or None


def _decode_key(raw: str, where: str) -> str:
    try:
        return unquote_plus(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"{where} {raw!r} has percent-escapes that are not UTF-8") from exc
