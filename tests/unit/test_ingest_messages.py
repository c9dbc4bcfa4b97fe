"""Tests for workers.ingest.messages: every queue message shape normalized to SourceRefs.

Fixtures copy the structure of real payloads: the AWS "Event message structure" and
"EventBridge event message structure" pages of the S3 user guide, an SNS-to-SQS notification
envelope, and MinIO payloads as emitted by cmd/event-notification.go and its webhook and Redis
targets (see minio/minio#7665 for a captured one).
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from workers.ingest.messages import InvalidMessage, SourceRef, parse_message, source_identity

# --- fixtures ----------------------------------------------------------------------------------

ETAG = "d41d8cd98f00b204e9800998ecf8427e"
VERSION = "096fKKXTRTtl3on89fVO.nfljtsv6qko"
SEQUENCER = "0055AED6DCD90281E5"


def s3_record(
    key: str = "HappyFace.jpg",
    *,
    event_name: str = "ObjectCreated:Put",
    bucket: str = "mybucket",
    size: int | None = 1024,
    etag: str | None = ETAG,
    version_id: str | None = VERSION,
    sequencer: str = SEQUENCER,
) -> dict[str, Any]:
    """One record as AWS S3 sends it (the user guide's ObjectCreated:Put example)."""
    obj: dict[str, Any] = {"key": key, "sequencer": sequencer}
    if size is not None:
        obj["size"] = size
    if etag is not None:
        obj["eTag"] = etag
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-west-2",
        "eventTime": "1970-01-01T00:00:00.000Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "testConfigRule",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
    }


def s3_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


S3_TEST_EVENT: dict[str, Any] = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2014-10-13T15:57:02.089Z",
    "Bucket": "bucketname",
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}


def sns_notification(message: dict[str, Any]) -> dict[str, Any]:
    """An SNS notification as an SQS subscriber without raw message delivery receives it."""
    return {
        "Type": "Notification",
        "MessageId": "c0e3b3a3-2b8e-5e2a-9d7e-7f6a1c1d2e3f",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:modscan-uploads",
        "Subject": "Amazon S3 Notification",
        "Message": json.dumps(message),
        "Timestamp": "2024-05-02T00:54:06.655Z",
        "SignatureVersion": "1",
        "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7fUQ=",
        "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=arn:aws:sns:us-west-2:123456789012:modscan-uploads:c9135db0",
    }


def eventbridge_event(
    key: str = "example-key",
    *,
    detail_type: str = "Object Created",
    bucket: str = "DOC-EXAMPLE-BUCKET1",
) -> dict[str, Any]:
    """The user guide's EventBridge "Object created" example."""
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "111122223333",
        "time": "2021-11-12T00:00:00Z",
        "region": "ca-central-1",
        "resources": [f"arn:aws:s3:::{bucket}"],
        "detail": {
            "version": "0",
            "bucket": {"name": bucket},
            "object": {
                "key": key,
                "size": 5,
                "etag": "b1946ac92492d2347c6235b4d2611184",
                "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
                "sequencer": "617f08299329d189",
            },
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


def minio_record(
    key: str = "photos%2Fmy+summer%282024%29.jpg",
    *,
    event_name: str = "s3:ObjectCreated:Put",
    bucket: str = "test-bucket",
    version_id: str | None = None,
) -> dict[str, Any]:
    """One MinIO record: key is Go's url.QueryEscape of 'photos/my summer(2024).jpg'."""
    obj: dict[str, Any] = {
        "key": key,
        "size": 629648,
        "eTag": "b7ce786cd89b182bfd5ae765557bbc37",
        "contentType": "image/jpeg",
        "userMetadata": {"content-type": "image/jpeg"},
        "sequencer": "17C0F3A9D1E0B5A2",
    }
    if version_id is not None:
        obj["versionId"] = version_id
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": "2024-05-18T07:34:32.114Z",
        "eventName": event_name,
        "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {
            "principalId": "minioadmin",
            "region": "",
            "sourceIPAddress": "172.18.0.1",
        },
        "responseElements": {
            "x-amz-id-2": "dd9025bab4ad464b049177c95eb6ebf374d3b3fd1af9251148b658df7ac2e3e8",
            "x-amz-request-id": "17C0F3A9D1E0B5A2",
            "x-minio-deployment-id": "cd7a0eb7-a1f9-48d9-b21a-56366d75cfdd",
            "x-minio-origin-endpoint": "http://172.18.0.6:9000",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "minioadmin"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": obj,
        },
        "source": {"host": "172.18.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"},
    }


def minio_log(record: dict[str, Any], key: str) -> dict[str, Any]:
    """MinIO's webhook/Kafka/NATS/MQTT/AMQP envelope (event.Log)."""
    return {"EventName": record["eventName"], "Key": key, "Records": [record]}


# --- AWS S3 event notifications ----------------------------------------------------------------


def test_s3_put_event_gives_one_ref_with_every_field() -> None:
    assert parse_message(json.dumps(s3_event(s3_record()))) == [
        SourceRef(
            bucket="mybucket",
            key="HappyFace.jpg",
            version_id=VERSION,
            etag=ETAG,
            size=1024,
            sequencer=SEQUENCER,
            scan_id=None,
        )
    ]


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("red+flower.jpg", "red flower.jpg"),  # the user guide's own example
        ("a+b%2Bc.jpg", "a b+c.jpg"),  # '+' is a space, '%2B' a literal plus
        ("c%2B%2B+notes.png", "c++ notes.png"),
        ("uploads/caf%C3%A9+cr%C3%A8me.jpg", "uploads/café crème.jpg"),  # UTF-8 escapes
        ("%E7%8C%AB/%F0%9F%90%88.webp", "猫/🐈.webp"),
        ("logs/5%3A00+%281%29.gif", "logs/5:00 (1).gif"),
        ("100%25+real.jpg", "100% real.jpg"),
    ],
)
def test_s3_keys_are_form_url_decoded(encoded: str, decoded: str) -> None:
    [ref] = parse_message(s3_event(s3_record(encoded)))
    assert ref.key == decoded


@pytest.mark.parametrize(
    "event_name",
    ["ObjectCreated:Put", "ObjectCreated:Post", "ObjectCreated:Copy",
     "ObjectCreated:CompleteMultipartUpload"],
)  # fmt: skip
def test_every_object_created_event_gives_a_ref(event_name: str) -> None:
    [ref] = parse_message(s3_event(s3_record("cat.png", event_name=event_name)))
    assert (ref.bucket, ref.key) == ("mybucket", "cat.png")


def test_s3_test_event_gives_nothing() -> None:
    assert parse_message(json.dumps(S3_TEST_EVENT)) == []


@pytest.mark.parametrize(
    "event_name",
    ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated", "ObjectRestore:Completed",
     "ObjectTagging:Put", "ObjectAcl:Put", "LifecycleExpiration:Delete",
     "Replication:OperationFailedReplication"],
)  # fmt: skip
def test_non_create_events_give_nothing(event_name: str) -> None:
    record = s3_record("gone.jpg", event_name=event_name, size=None, etag=None)
    assert parse_message(s3_event(record)) == []


def test_multiple_records_give_refs_in_order_and_skip_removals() -> None:
    body = s3_event(
        s3_record("first.jpg", sequencer="0055AED6DCD90281E5"),
        s3_record("gone.jpg", event_name="ObjectRemoved:Delete", size=None, etag=None),
        s3_record("second+one.png", version_id=None, etag="9b2cf535f27731c974343645a3985328-3"),
    )
    refs = parse_message(body)
    assert [(r.key, r.version_id, r.etag) for r in refs] == [
        ("first.jpg", VERSION, ETAG),
        ("second one.png", None, "9b2cf535f27731c974343645a3985328-3"),
    ]


def test_unversioned_bucket_null_version_and_quoted_etag() -> None:
    record = s3_record("x.jpg", etag=f'"{ETAG}"')
    record["s3"]["object"]["versionId"] = None  # "versioning-enabled, otherwise null"
    [ref] = parse_message(s3_event(record))
    assert (ref.version_id, ref.etag) == (None, ETAG)


def test_zero_byte_object_keeps_size_zero() -> None:
    [ref] = parse_message(s3_event(s3_record("empty.jpg", size=0)))
    assert ref.size == 0


def test_empty_records_list_gives_nothing() -> None:
    assert parse_message('{"Records": []}') == []


def test_bytes_and_dict_bodies_parse_like_str() -> None:
    body = s3_event(s3_record("caf%C3%A9.jpg"))
    text = json.dumps(body, ensure_ascii=False)
    from_str = parse_message(text)
    assert from_str == parse_message(text.encode("utf-8")) == parse_message(body)
    assert from_str[0].key == "café.jpg"


def test_parse_does_not_mutate_a_dict_body() -> None:
    body = s3_event(s3_record("a+b.jpg"))
    before = copy.deepcopy(body)
    parse_message(body)
    assert body == before


# --- SNS-wrapped -------------------------------------------------------------------------------


def test_sns_wrapped_s3_event_is_unwrapped() -> None:
    body = sns_notification(s3_event(s3_record("batch%2F7/a+b%2Bc.jpg")))
    assert parse_message(json.dumps(body)) == [
        SourceRef("mybucket", "batch/7/a b+c.jpg", VERSION, ETAG, 1024, SEQUENCER)
    ]


def test_sns_wrapped_test_event_gives_nothing() -> None:
    assert parse_message(sns_notification(S3_TEST_EVENT)) == []


def test_sns_wrapped_removal_gives_nothing() -> None:
    record = s3_record("gone.jpg", event_name="ObjectRemoved:Delete", size=None, etag=None)
    assert parse_message(sns_notification(s3_event(record))) == []


# --- EventBridge -------------------------------------------------------------------------------


def test_eventbridge_object_created_gives_one_ref() -> None:
    assert parse_message(json.dumps(eventbridge_event())) == [
        SourceRef(
            bucket="DOC-EXAMPLE-BUCKET1",
            key="example-key",
            version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
            etag="b1946ac92492d2347c6235b4d2611184",
            size=5,
            sequencer="617f08299329d189",
        )
    ]


def test_eventbridge_key_is_form_url_decoded_like_notifications() -> None:
    [ref] = parse_message(eventbridge_event("inbox/my+photo%2B1+caf%C3%A9.jpg"))
    assert ref.key == "inbox/my photo+1 café.jpg"


@pytest.mark.parametrize(
    "detail_type",
    ["Object Deleted", "Object Restore Completed", "Object Tags Added", "Object ACL Updated"],
)
def test_eventbridge_other_detail_types_give_nothing(detail_type: str) -> None:
    assert parse_message(eventbridge_event(detail_type=detail_type)) == []


def test_eventbridge_without_version_id_or_size() -> None:
    event = eventbridge_event("k.jpg")
    del event["detail"]["object"]["version-id"]
    del event["detail"]["object"]["size"]
    [ref] = parse_message(event)
    assert (ref.version_id, ref.size, ref.etag) == (None, None, "b1946ac92492d2347c6235b4d2611184")


# --- MinIO -------------------------------------------------------------------------------------


def test_minio_records_decode_query_escaped_key() -> None:
    [ref] = parse_message({"Records": [minio_record()]})  # Redis "namespace" value shape
    assert ref == SourceRef(
        bucket="test-bucket",
        key="photos/my summer(2024).jpg",
        version_id=None,
        etag="b7ce786cd89b182bfd5ae765557bbc37",
        size=629648,
        sequencer="17C0F3A9D1E0B5A2",
    )


def test_minio_webhook_envelope_dedupes_key_and_records() -> None:
    body = minio_log(minio_record(), "test-bucket/photos/my summer(2024).jpg")
    refs = parse_message(json.dumps(body))
    assert [(r.bucket, r.key, r.etag) for r in refs] == [
        ("test-bucket", "photos/my summer(2024).jpg", "b7ce786cd89b182bfd5ae765557bbc37")
    ]


def test_minio_envelope_without_records_uses_decoded_key_verbatim() -> None:
    body = {"EventName": "s3:ObjectCreated:Put", "Key": "test-bucket/inbox/a+b%2Bc.jpg"}
    assert parse_message(body) == [SourceRef(bucket="test-bucket", key="inbox/a+b%2Bc.jpg")]


def test_minio_old_eventtype_envelope_and_placeholder_version() -> None:
    record = minio_record("j1.jpg", bucket="play1", version_id="1")  # pre-versioning MinIO
    body = {"EventType": "s3:ObjectCreated:Put", "Key": "play1/j1.jpg", "Records": [record]}
    [ref] = parse_message(body)
    assert (ref.bucket, ref.key, ref.version_id) == ("play1", "j1.jpg", None)
    assert source_identity(ref) == ("play1", "j1.jpg", "b7ce786cd89b182bfd5ae765557bbc37")


def test_minio_real_version_id_is_kept() -> None:
    version = "a4d9b3c6-6f0e-4b8a-9d1f-1f2e3d4c5b6a"
    [ref] = parse_message({"Records": [minio_record("x.jpg", version_id=version)]})
    assert ref.version_id == version


def test_minio_removal_gives_nothing() -> None:
    record = minio_record("x.jpg", event_name="s3:ObjectRemoved:Delete")
    assert parse_message(minio_log(record, "test-bucket/x.jpg")) == []
    assert parse_message({"EventName": "s3:ObjectRemoved:Delete", "Key": "test-bucket/x.jpg"}) == []


def test_minio_redis_access_format() -> None:
    body = [{"Event": [minio_record()], "EventTime": "2024-05-18T07:34:32.114Z"}]
    [ref] = parse_message(json.dumps(body))
    assert (ref.bucket, ref.key, ref.size) == ("test-bucket", "photos/my summer(2024).jpg", 629648)


# --- modscan's own message ---------------------------------------------------------------------


def test_own_message_minimal_takes_key_verbatim() -> None:
    assert parse_message('{"bucket": "uploads", "key": "a+b%2Bc caf\\u00e9.jpg"}') == [
        SourceRef(bucket="uploads", key="a+b%2Bc café.jpg")
    ]


def test_own_message_with_version_and_scan_id() -> None:
    body = {"bucket": "uploads", "key": "2024/05/x.png", "version_id": VERSION, "scan_id": 42}
    assert parse_message(json.dumps(body).encode()) == [
        SourceRef(bucket="uploads", key="2024/05/x.png", version_id=VERSION, scan_id=42)
    ]


def test_own_message_with_null_optionals() -> None:
    body = {"bucket": "uploads", "key": "x.png", "version_id": None, "scan_id": None}
    assert parse_message(body) == [SourceRef(bucket="uploads", key="x.png")]


# --- invalid messages --------------------------------------------------------------------------


def _with(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of body with the dotted path set to value (or deleted for _DELETE)."""
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return out


_DELETE = object()
_S3 = s3_event(s3_record())
_EB = eventbridge_event()

INVALID: list[tuple[str, Any, str]] = [
    ("not json", "Records: yes", "not valid JSON"),
    ("empty body", "", "not valid JSON"),
    ("truncated json", json.dumps(_S3)[:-3], "not valid JSON"),
    ("nan constant", '{"bucket": "b", "key": "k", "scan_id": NaN}', "not valid JSON"),
    ("deeply nested", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("invalid utf-8 bytes", b'{"bucket": "b", "key": "\xff.jpg"}', "not valid UTF-8"),
    ("json scalar", "42", "must be a JSON object, got number"),
    ("json string", '"s3://b/k"', "must be a JSON object, got string"),
    ("json null", "null", "must be a JSON object, got null"),
    ("empty object", "{}", "matches no known shape (top-level keys: none)"),
    ("unknown shape", {"Bucket": "b", "Object": "k"}, "top-level keys: Bucket, Object"),
    ("records not a list", {"Records": {"s3": {}}}, "Records must be a list, got object"),
    ("record not an object", {"Records": ["ObjectCreated:Put"]}, "Records[0] must be an object"),
    ("missing eventSource", _with(_S3, "Records.0.eventSource", _DELETE), "missing 'eventSource'"),
    ("sqs record", _with(_S3, "Records.0.eventSource", "aws:sqs"), "'aws:sqs' is not an S3 event"),
    ("eventName not string", _with(_S3, "Records.0.eventName", 1), "eventName must be a string"),
    ("missing s3", _with(_S3, "Records.0.s3", _DELETE), "Records[0] is missing 's3'"),
    ("missing bucket", _with(_S3, "Records.0.s3.bucket", _DELETE), "missing 'bucket'"),
    ("missing bucket name", _with(_S3, "Records.0.s3.bucket.name", _DELETE), "missing 'name'"),
    ("empty bucket name", _with(_S3, "Records.0.s3.bucket.name", ""), "bucket.name is empty"),
    ("missing key", _with(_S3, "Records.0.s3.object.key", _DELETE), "object is missing 'key'"),
    ("null key", _with(_S3, "Records.0.s3.object.key", None), "object is missing 'key'"),
    ("key not string", _with(_S3, "Records.0.s3.object.key", 7), "key must be a string, got num"),
    ("empty key", _with(_S3, "Records.0.s3.object.key", ""), "object.key is empty"),
    ("key escapes not utf-8", _with(_S3, "Records.0.s3.object.key", "%FF.jpg"), "not UTF-8"),
    ("size as string", _with(_S3, "Records.0.s3.object.size", "1024"), "non-negative integer"),
    ("size negative", _with(_S3, "Records.0.s3.object.size", -1), "non-negative integer"),
    ("size bool", _with(_S3, "Records.0.s3.object.size", True), "non-negative integer"),
    ("size float", _with(_S3, "Records.0.s3.object.size", 10.5), "non-negative integer"),
    ("etag not string", _with(_S3, "Records.0.s3.object.eTag", 5), "eTag must be a string"),
    ("version not string", _with(_S3, "Records.0.s3.object.versionId", 3), "versionId must be"),
    ("sns message not string", {"Type": "Notification", "Message": {"Records": []}},
     "Message must be a JSON string, got object"),
    ("sns message missing", {"Type": "Notification", "TopicArn": "arn:aws:sns:x"},
     "Message must be a JSON string, got null"),
    ("sns message not json", sns_notification({}) | {"Message": "hello"},
     "SNS notification Message is not valid JSON"),
    ("sns subscription confirmation",
     sns_notification({}) | {"Type": "SubscriptionConfirmation"}, "'SubscriptionConfirmation'"),
    ("sns inside sns", sns_notification(sns_notification(_S3)), "nested inside another SNS"),
    ("sns wrapping garbage", sns_notification({"hello": "world"}), "matches no known shape"),
    ("eventbridge missing detail-type", _with(_EB, "detail-type", _DELETE), "'detail-type'"),
    ("eventbridge missing detail", _with(_EB, "detail", _DELETE), "missing 'detail'"),
    ("eventbridge detail not object", _with(_EB, "detail", "x"), "detail must be an object"),
    ("eventbridge missing key", _with(_EB, "detail.object.key", _DELETE), "missing 'key'"),
    ("eventbridge size string", _with(_EB, "detail.object.size", "5"), "non-negative integer"),
    ("minio key without slash", {"EventName": "s3:ObjectCreated:Put", "Key": "nobucket"},
     "must be 'bucket/key'"),
    ("minio key empty object", {"EventName": "s3:ObjectCreated:Put", "Key": "bucket/"},
     "must be 'bucket/key'"),
    ("minio key without event name", {"Key": "b/k.jpg", "Records": []}, "no EventName"),
    ("minio event name only", {"EventName": "s3:ObjectCreated:Put"}, "neither Records nor Key"),
    ("minio key not string", {"EventName": "s3:ObjectCreated:Put", "Key": 5},
     "Key must be a string"),
    ("empty json list", "[]", "empty JSON list"),
    ("list of numbers", "[1, 2]", "[0] is number"),
    ("access entry without Event", '[{"EventTime": "x"}]', "[0] is object without 'Event'"),
    ("access Event not list", '[{"Event": {}}]', "[0].Event must be a list"),
    ("own missing key", {"bucket": "uploads"}, "modscan message is missing 'key'"),
    ("own missing bucket", {"key": "x.jpg"}, "modscan message is missing 'bucket'"),
    ("own bucket not string", {"bucket": 1, "key": "x.jpg"}, "bucket must be a string"),
    ("own empty key", {"bucket": "b", "key": ""}, "key is empty"),
    ("own scan_id string", {"bucket": "b", "key": "k", "scan_id": "7"}, "scan_id must be"),
    ("own scan_id float", {"bucket": "b", "key": "k", "scan_id": 7.0}, "scan_id must be"),
    ("own scan_id bool", {"bucket": "b", "key": "k", "scan_id": True}, "scan_id must be"),
    ("own scan_id zero", {"bucket": "b", "key": "k", "scan_id": 0}, "scan_id must be"),
    ("own version not string", {"bucket": "b", "key": "k", "version_id": 2}, "version_id must be"),
    ("own unknown field", {"bucket": "b", "key": "k", "versionId": "v"},
     "unknown fields: versionId"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "reason"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_messages_raise_with_reason(body: Any, reason: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        parse_message(body)
    assert reason in str(info.value)


@pytest.mark.parametrize("body", [["Records"], 42, None, bytearray(b"{}")])
def test_wrong_body_type_raises(body: Any) -> None:
    with pytest.raises(InvalidMessage, match="must be str, bytes or dict"):
        parse_message(body)


def test_invalid_message_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_message("{")


# --- identity and duplicate delivery -----------------------------------------------------------


def test_duplicate_delivery_maps_to_same_identity() -> None:
    body = json.dumps(s3_event(s3_record("uploads/a+b%2Bc.jpg")))
    first, second = parse_message(body), parse_message(body.encode())
    assert first == second
    assert source_identity(first[0]) == source_identity(second[0])
    assert source_identity(first[0]) == ("mybucket", "uploads/a b+c.jpg", VERSION)


def test_same_event_direct_and_via_sns_has_same_identity() -> None:
    event = s3_event(s3_record("x+y.jpg"))
    [direct] = parse_message(event)
    [via_sns] = parse_message(sns_notification(event))
    assert direct == via_sns
    assert source_identity(direct) == source_identity(via_sns) == ("mybucket", "x y.jpg", VERSION)


def test_same_object_via_notification_and_eventbridge_has_same_identity() -> None:
    [from_s3] = parse_message(s3_event(s3_record("a+b.jpg", bucket="uploads")))
    event = eventbridge_event("a+b.jpg", bucket="uploads")
    event["detail"]["object"].update({"version-id": VERSION, "etag": ETAG})
    [from_eb] = parse_message(event)
    assert source_identity(from_s3) == source_identity(from_eb) == ("uploads", "a b.jpg", VERSION)


def test_identity_falls_back_from_version_to_etag_to_empty() -> None:
    assert source_identity(SourceRef("b", "k", version_id="v1", etag="e1")) == ("b", "k", "v1")
    assert source_identity(SourceRef("b", "k", etag="e1")) == ("b", "k", "e1")
    assert source_identity(SourceRef("b", "k", scan_id=3)) == ("b", "k", "")


def test_new_content_under_same_key_is_a_new_identity() -> None:
    [old] = parse_message(s3_event(s3_record("k.jpg", version_id=None, etag=ETAG)))
    [new] = parse_message(s3_event(s3_record("k.jpg", version_id=None, etag="0" * 32)))
    assert source_identity(old) != source_identity(new)
    assert source_identity(new) == ("mybucket", "k.jpg", "0" * 32)


def test_source_ref_is_frozen_and_hashable() -> None:
    ref = SourceRef("b", "k", etag="e")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.key = "other"  # type: ignore[misc]
    assert {ref, SourceRef("b", "k", etag="e")} == {ref}
