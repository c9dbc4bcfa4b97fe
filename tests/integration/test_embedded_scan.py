"""The same scenarios without a broker: embedded mode, on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest

from modscan.settings import Settings
from tests.integration.helpers import assert_scan_outcome, fill_bucket, items_by_key, table_counts
from tests.support.cli import run_cli
from tests.support.images import bad_inputs, jpeg_bytes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def context_cache() -> dict[str, Any]:
    return {}


def make_settings(db_url: str, moto_endpoint: str, small_model: Path) -> Settings:
    return Settings(
        database_url=db_url,
        s3_endpoint_url=moto_endpoint,
        model_path=small_model,
        max_batch=16,
        batch_sizes=[4],
        chunk_size=8,
        worker_concurrency=4,
    )


def run_scan(settings: Settings, source: str) -> int:
    from workers.context import WorkerContext
    from workers.embedded import create_embedded_scan, run_embedded_scan

    scan_id = create_embedded_scan(settings, source)
    ctx = WorkerContext(settings)
    try:
        ctx.engine.wait_ready()
        run_embedded_scan(ctx, scan_id)
    finally:
        ctx.close()
    return scan_id


@pytest.mark.slow(seconds=25)
def test_prefix_scan_embedded(db_url: str, moto_endpoint: str, small_model: Path) -> None:
    settings = make_settings(db_url, moto_endpoint, small_model)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"embedded-{'pg' if db_url.startswith('postgresql') else 'lite'}"
    contents = fill_bucket(s3, bucket, images=20, duplicates=3)

    scan_id = run_scan(settings, f"s3://{bucket}/{contents.prefix}")
    assert_scan_outcome(db_url, scan_id, contents)

    before = table_counts(db_url)
    again = run_scan(settings, f"s3://{bucket}/{contents.prefix}")
    assert table_counts(db_url) == before
    statuses = {
        item.status for key, item in items_by_key(db_url, again).items() if key in contents.good
    }
    assert statuses == {"cached"}


@pytest.mark.slow(seconds=25)
def test_cli_folder_scan_and_export(tmp_path: Path, small_model: Path) -> None:
    """`modscan scan ./dir` with nothing configured: SQLite at ./modscan.db, a summary,
    a visible warning about the untrained model, and an export row per file."""
    folder = tmp_path / "photos"
    (folder / "nested").mkdir(parents=True)
    for i in range(12):
        (folder / f"p{i}.jpg").write_bytes(jpeg_bytes(100 + i))
    (folder / "nested" / "copy.jpg").write_bytes(jpeg_bytes(100))
    for name, (data, _) in bad_inputs().items():
        (folder / "nested" / name).write_bytes(data)
    (folder / "readme.txt").write_text("skip me")
    env = {
        "MODSCAN_MODEL_PATH": str(small_model),
        "MODSCAN_BATCH_SIZES": "[4]",
        "MODSCAN_MAX_BATCH": "16",
    }

    result = run_cli(["scan", str(folder)], tmp_path, env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "modscan.db").is_file()
    assert "UNTRAINED" in result.stderr
    assert "objects: 17" in result.stdout
    assert "corrupt: 2" in result.stdout and "unsupported_format: 1" in result.stdout
    assert "images/s" in result.stdout
    # The first scan made policy version 1 from the card: every verdict got an action.
    labels = re.search(r"labels: (.*)", result.stdout)
    actions = re.search(r"actions: (.*)  \(policy", result.stdout)
    assert labels is not None and actions is not None, result.stdout
    total = [sum(int(n) for n in re.findall(r": (\d+)", m.group(1))) for m in (labels, actions)]
    assert total[0] == total[1] == 13  # 17 files less 2 corrupt, 1 unsupported, 1 skipped

    exported = run_cli(["export", "--format", "jsonl"], tmp_path, env)
    assert exported.returncode == 0, exported.stderr[-2000:]
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert len(rows) == 17
    by_name = {Path(row["source_uri"]).name: row for row in rows}
    assert by_name["copy.jpg"]["sha256"] == by_name["p0.jpg"]["sha256"]
    assert by_name["copy.jpg"]["ai_score"] == by_name["p0.jpg"]["ai_score"]
    assert by_name["empty.jpg"]["error_reason"] == "corrupt"
    assert by_name["readme.txt"]["status"] == "skipped"
    assert all(row["model_version"] == "untrained" for row in rows if row["label"])

    as_csv = run_cli(["export", "--format", "csv", "--scan", "1"], tmp_path, env)
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(parsed) == 17 and {"source_uri", "ai_score", "status"} <= set(parsed[0])


def test_cli_refuses_unmigrated_database(pg_url: str, tmp_path: Path) -> None:
    from tests.support.services import postgres_database

    with postgres_database("modscan_unmigrated") as empty:
        result = run_cli(["scan", str(tmp_path)], tmp_path, {"MODSCAN_DATABASE_URL": empty})
        assert result.returncode != 0
        assert "modscan migrate" in result.stderr
        migrated = run_cli(["migrate"], tmp_path, {"MODSCAN_DATABASE_URL": empty})
        assert migrated.returncode == 0, migrated.stderr[-2000:]


@pytest.mark.slow
def test_sqs_ingest_embedded(sqlite_url: str, moto_endpoint: str, small_model: Path) -> None:
    """Own-format messages, each delivered twice, scored in-process into SQLite."""
    from workers.context import WorkerContext
    from workers.ingest.sqs import consume_sqs

    settings = make_settings(sqlite_url, moto_endpoint, small_model)
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket="sqs-embedded")
    keys = [f"in/{i}.jpg" for i in range(6)]
    for i, key in enumerate(keys):
        s3.put_object(Bucket="sqs-embedded", Key=key, Body=jpeg_bytes(300 + i))
    queue_url = sqs.create_queue(QueueName="own-format")["QueueUrl"]
    for key in [*keys, *keys]:
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=json.dumps({"bucket": "sqs-embedded", "key": key})
        )
    sqs.send_message(QueueUrl=queue_url, MessageBody="{not json")

    from workers.classify import classify_items

    ctx = WorkerContext(settings)
    dispatched: list[list[int]] = []
    try:
        stats = consume_sqs(
            settings,
            queue_url,
            lambda _scan, items: dispatched.append([i.item_id for i in items]),
            idle_timeout_s=1,
            wait_time_s=1,
        )
        assert stats.invalid == 1 and stats.refs == 12
        assert sum(len(ids) for ids in dispatched) == 6  # duplicates were no-ops
        ctx.engine.wait_ready()
        for ids in dispatched:
            assert classify_items(ctx, ids).retry_item_ids == []
    finally:
        ctx.close()
    assert table_counts(sqlite_url)["verdicts"] == 6


@pytest.mark.slow
def test_missing_bucket_fails_the_scan_clearly(
    sqlite_url: str, moto_endpoint: str, small_model: Path
) -> None:
    from db.models import Scan
    from db.session import session_scope

    settings = make_settings(sqlite_url, moto_endpoint, small_model)
    scan_id = run_scan(settings, "s3://no-such-bucket/photos/")
    with session_scope(sqlite_url) as session:
        scan = session.get(Scan, scan_id)
        assert scan is not None
        assert scan.status == "failed"
        assert "NoSuchBucket" in (scan.error or "")
