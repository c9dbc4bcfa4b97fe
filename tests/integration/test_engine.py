"""The batching engine against a real database, with a small deterministic scorer.

The scorer is a stand-in for the network (mean brightness), so these tests check the
engine's own behaviour: batch formation, the wait for a trickle, dedupe and writes.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from sqlalchemy import func, select

from db.audit import verify_chain
from db.items import SourceRecord, register_sources
from db.models import Action, AuditEvent, ItemStatus, OutboxMessage, Review, ScanItem, Verdict
from db.policy import PolicyDraft, change_policy
from db.scans import create_scan
from db.session import session_scope
from db.verdicts import ImageFacts, ModelStamp
from workers.engine import BatchEngine, Prepared

pytestmark = pytest.mark.integration


class Brightness:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def ai_scores(self, pixels: np.ndarray) -> np.ndarray:
        with self.lock:
            self.batches.append(len(pixels))
        return np.asarray(pixels.reshape(len(pixels), -1).mean(axis=1) / 255.0)


def make_items(url: str, n: int, *, check: str = "off") -> list[int]:
    """n pending items, under a policy with the given robustness check (off: one model call
    per batch, which the batching tests count)."""
    with session_scope(url) as session:
        change_policy(session, PolicyDraft(low=0.25, high=0.75, robustness_check=check), actor="t")
        scan_id = create_scan(session, source_uri="s3://b/", kind="prefix").id
        records = [
            SourceRecord("s3", "b", f"k{i}", etag=f"e{i}", version=f"e{i}") for i in range(n)
        ]
        return [item.item_id for item in register_sources(session, scan_id, records)]


def prepared(item_id: int, value: int, scan_id: int = 1) -> Prepared:
    pixels = np.full((4, 4, 3), value, dtype=np.uint8)
    facts = ImageFacts(sha256=f"{value:064x}", size_bytes=10, width=4, height=4, format="PNG")
    return Prepared(item_id=item_id, scan_id=scan_id, pixels=pixels, image=facts)


def engine(url: str, scorer: Brightness, *, max_batch: int, max_wait_ms: int) -> BatchEngine:
    return BatchEngine(
        database_url=url,
        scorer_factory=lambda: scorer,
        stamp=lambda: ModelStamp(name="brightness", version="1", threshold=0.5),
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
    )


def test_batches_fill_up_and_duplicates_score_once(db_url: str) -> None:
    ids = make_items(db_url, 40)
    scorer = Brightness()
    eng = engine(db_url, scorer, max_batch=16, max_wait_ms=200)
    eng.wait_ready()
    # 40 items, 30 distinct images (the last 10 repeat the first 10), one bad item.
    items = [prepared(item_id, i % 30 * 8) for i, item_id in enumerate(ids[:39])]
    items.append(Prepared(item_id=ids[39], scan_id=1, error_reason="corrupt", error_detail="x"))
    eng.submit(items).result(timeout=30)
    eng.close()
    assert max(scorer.batches) == 16 and sum(scorer.batches) == 30
    with session_scope(db_url) as session:
        verdicts = session.scalars(select(Verdict)).all()
        statuses = dict(
            session.execute(select(ScanItem.status, func.count()).group_by(ScanItem.status)).all()
        )
    assert len(verdicts) == 30
    assert statuses[ItemStatus.ERROR] == 1
    assert statuses[ItemStatus.SCORED] == 30
    assert statuses.get(ItemStatus.DUPLICATE, 0) + statuses.get(ItemStatus.CACHED, 0) == 9
    by_sha = {v.image_sha256: v for v in verdicts}
    assert by_sha[f"{0:064x}"].label == "real" and by_sha[f"{29 * 8:064x}"].ai_score > 0.9


class LeftHalf:
    """Scores the left half's brightness: a mirrored image scores as its right half."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def ai_scores(self, pixels: np.ndarray) -> np.ndarray:
        self.calls.append(len(pixels))
        half = pixels.shape[2] // 2
        return np.asarray(pixels[:, :, :half].reshape(len(pixels), -1).mean(axis=1) / 255.0)


def split(item_id: int, left: int, right: int) -> Prepared:
    pixels = np.zeros((4, 4, 3), dtype=np.uint8)
    pixels[:, :2], pixels[:, 2:] = left, right
    facts = ImageFacts(
        sha256=f"{left:032x}{right:032x}", size_bytes=10, width=4, height=4, format="PNG"
    )
    return Prepared(item_id=item_id, scan_id=1, pixels=pixels, image=facts)


def test_policy_decides_actions_with_the_robustness_check(db_url: str) -> None:
    """Flagged, cleared and in-band scores; a mirrored copy that lands elsewhere → review.
    Each new verdict gets its policy version, an audit event, a review row when it needs
    one and an outbox event when it is flagged or needs review."""
    ids = make_items(db_url, 4, check="hflip")
    scorer = LeftHalf()
    eng = BatchEngine(
        database_url=db_url,
        scorer_factory=lambda: scorer,
        stamp=lambda: ModelStamp(name="lefthalf", version="1", threshold=0.5),
        max_batch=16,
        max_wait_ms=100,
        outbox_targets=["redis"],
    )
    eng.wait_ready()
    items = [
        split(ids[0], 250, 250),  # 0.98 both ways: flagged
        split(ids[1], 10, 10),  # 0.04 both ways: cleared
        split(ids[2], 128, 128),  # 0.50: in band, review without a check
        split(ids[3], 250, 10),  # flagged, but its mirror is cleared: review
    ]
    eng.submit(items).result(timeout=30)
    eng.close()
    assert scorer.calls == [4, 3]  # the in-band image needed no check
    with session_scope(db_url) as session:
        by_item = {
            item: session.scalar(select(Verdict).join(ScanItem).where(ScanItem.id == item))
            for item in ids
        }
        assert [by_item[i].action for i in ids] == [  # type: ignore[union-attr]
            Action.FLAGGED,
            Action.CLEARED,
            Action.NEEDS_REVIEW,
            Action.NEEDS_REVIEW,
        ]
        mirrored = by_item[ids[3]]
        assert mirrored is not None and mirrored.check_score is not None
        assert mirrored.ai_score > 0.9 and mirrored.check_score < 0.1
        assert by_item[ids[2]].check_score is None  # type: ignore[union-attr]
        assert {v.policy_version for v in by_item.values()} == {1}  # type: ignore[union-attr]
        reviewed = set(session.scalars(select(Review.verdict_id)))
        assert reviewed == {by_item[ids[2]].id, by_item[ids[3]].id}  # type: ignore[union-attr]
        topics = sorted(session.scalars(select(OutboxMessage.topic)))
        assert topics == ["verdict.flagged", "verdict.needs_review", "verdict.needs_review"]
        written = session.scalars(
            select(AuditEvent.subject_id).where(AuditEvent.action == "verdict.written")
        ).all()
        assert sorted(map(int, written)) == sorted(v.id for v in by_item.values())  # type: ignore[union-attr]
        assert verify_chain(session).ok


def test_a_trickle_waits_at_most_max_wait(sqlite_url: str) -> None:
    ids = make_items(sqlite_url, 3)
    scorer = Brightness()
    eng = engine(sqlite_url, scorer, max_batch=64, max_wait_ms=100)
    eng.wait_ready()
    started = time.perf_counter()
    eng.submit([prepared(ids[0], 10)]).result(timeout=10)
    single = time.perf_counter() - started
    futures = [eng.submit([prepared(item_id, 20 + i)]) for i, item_id in enumerate(ids[1:])]
    for future in futures:
        future.result(timeout=10)
    eng.close()
    assert 0.08 <= single < 2.0  # waited for company, then went alone
    assert scorer.batches == [1, 2]  # the two quick submissions shared a batch


def test_failed_model_load_fails_submissions(sqlite_url: str) -> None:
    def broken() -> Brightness:
        raise OSError("weights unreadable")

    eng = BatchEngine(
        database_url=sqlite_url,
        scorer_factory=broken,
        stamp=lambda: ModelStamp("m", "1", 0.5),
        max_batch=4,
        max_wait_ms=0,
    )
    with pytest.raises(RuntimeError, match="weights unreadable"):
        eng.wait_ready(timeout=10)
    with pytest.raises(RuntimeError, match="failed to load"):
        eng.submit([prepared(1, 1)]).result(timeout=10)
    eng.close()
