"""The batching engine: one inference thread and one writer thread per process.

Task threads hand in decoded images (or per-image errors). The inference thread forms
batches of up to ``max_batch`` images, waiting at most ``max_wait_ms`` after the first one
when traffic is a trickle, skips bytes that already have a verdict, and runs the compiled
forward pass. The writer thread writes each batch's outcomes in one transaction while the
next batch is already on the model, then wakes the tasks whose items are all written.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from db.models import ErrorReason, ItemStatus
from db.policy import PolicyRule, policy_in_force
from db.session import session_scope
from db.verdicts import ImageFacts, ModelStamp, Outcome, existing_verdicts, record_outcomes
from workers.classifier.variants import VARIANTS
from workers.transient import OUTAGE, is_transient

log = logging.getLogger(__name__)


class Scorer(Protocol):
    """What the engine needs of a model; ModelRunner provides it."""

    def ai_scores(self, pixels: np.ndarray) -> np.ndarray: ...


@dataclass
class Prepared:
    """One item after fetching and decoding: pixels and facts, or an error."""

    item_id: int
    scan_id: int
    pixels: np.ndarray | None = None
    image: ImageFacts | None = None
    error_reason: str | None = None
    error_detail: str | None = None


@dataclass
class _Ticket:
    remaining: int
    future: Future[None] = field(default_factory=Future)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self, n: int) -> None:
        with self.lock:
            self.remaining -= n
            finished = self.remaining <= 0
        if finished and not self.future.done():
            self.future.set_result(None)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass
class BatchStats:
    batches: int = 0
    images: int = 0
    scored: int = 0
    model_seconds: float = 0.0
    largest_batch: int = 0
    first_batch_at: float = 0.0
    last_batch_at: float = 0.0
    redone: int = 0  # items another delivery had already finished: work done twice

    def summary(self) -> str:
        span = self.last_batch_at - self.first_batch_at
        busy = self.model_seconds / span if span > 0 else 0.0
        return (
            f"{self.batches} batches, {self.images} images, {self.scored} scored, "
            f"largest {self.largest_batch}, model busy {busy:.0%} of {span:.1f}s, "
            f"{self.redone} redone"
        )


@dataclass
class _Written:
    outcomes: list[Outcome]
    stamp: ModelStamp
    batch: list[tuple[Prepared, _Ticket]]
    policy: PolicyRule


_STOP = object()


class BatchEngine:
    def __init__(
        self,
        *,
        database_url: str,
        scorer_factory: Callable[[], Scorer],
        stamp: Callable[[], ModelStamp],
        max_batch: int,
        max_wait_ms: int,
        remember: int = 200_000,
        outbox_targets: Sequence[str] = (),
        policy_ttl_s: float = 5.0,
        transient_retry_s: float = 900.0,
    ) -> None:
        self.transient_retry_s = transient_retry_s
        self.database_url = database_url
        self._scorer_factory = scorer_factory
        self._stamp = stamp
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self._inbox: queue.Queue[object] = queue.Queue()
        self._outbox: queue.Queue[object] = queue.Queue(maxsize=2)
        self._seen: OrderedDict[str, float] = OrderedDict()  # sha → ai_score, this run
        self._remember = remember
        self.outbox_targets = tuple(outbox_targets)
        self._policy_ttl = policy_ttl_s
        self._policy: tuple[float, PolicyRule] | None = None  # (read at, rule)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.stats = BatchStats()
        self._threads = [
            threading.Thread(target=self._infer_loop, name="modscan-infer", daemon=True),
            threading.Thread(target=self._write_loop, name="modscan-write", daemon=True),
        ]
        self._started = False

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if not self._started:
            self._started = True
            for thread in self._threads:
                thread.start()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the model is loaded and warmed up (or raise why it could not be)."""
        self.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the model did not finish loading in time")
        if self._startup_error is not None:
            raise RuntimeError(f"the model failed to load: {self._startup_error}") from (
                self._startup_error
            )

    def close(self) -> None:
        if self._started:
            self._inbox.put(_STOP)
            for thread in self._threads:
                thread.join(timeout=60)

    # -- submitting --------------------------------------------------------------------

    def submit(self, prepared: Sequence[Prepared]) -> Future[None]:
        """Queue items; the future resolves once every one of them is written."""
        self.start()
        ticket = _Ticket(remaining=len(prepared))
        if self._startup_error is not None:
            ticket.fail(RuntimeError(f"the model failed to load: {self._startup_error}"))
            return ticket.future
        if not prepared:
            ticket.future.set_result(None)
        for item in prepared:
            self._inbox.put((item, ticket))
        return ticket.future

    # -- inference thread --------------------------------------------------------------

    def _infer_loop(self) -> None:
        try:
            scorer = self._scorer_factory()
            stamp = self._stamp()
        except BaseException as exc:  # report, then fail every submission
            log.exception("model failed to load")
            self._startup_error = exc
            self._ready.set()
            self._drain_failing(exc)
            return
        self._ready.set()
        while True:
            first = self._inbox.get()
            if first is _STOP:
                self._outbox.put(_STOP)
                return
            batch = self._gather(first)
            try:
                policy = self._current_policy(stamp)
                outcomes = self._score(scorer, stamp, [item for item, _ in batch], policy)
            except Exception as exc:
                log.exception("inference failed for a batch of %d", len(batch))
                for _, ticket in batch:
                    ticket.fail(exc)
                continue
            self._outbox.put(_Written(outcomes, stamp, batch, policy))

    def _current_policy(self, stamp: ModelStamp) -> PolicyRule:
        """The policy in force, re-read at most every few seconds (it changes rarely)."""
        now = time.monotonic()
        if self._policy is None or now - self._policy[0] > self._policy_ttl:
            with session_scope(self.database_url) as session:
                rule = policy_in_force(
                    session, band=stamp.uncertain_band, threshold=stamp.threshold
                )
            self._policy = (now, rule)
        return self._policy[1]

    def _check_scores(
        self,
        scorer: Scorer,
        policy: PolicyRule,
        to_score: dict[str, np.ndarray],
        scores: dict[str, float],
    ) -> dict[str, float]:
        """Score the policy's robustness variant of the images whose action it could change."""
        shas = [sha for sha in to_score if policy.needs_check(scores[sha])]
        if not shas:
            return {}
        variant = VARIANTS[policy.robustness_check]
        values = scorer.ai_scores(variant(np.stack([to_score[sha] for sha in shas])))
        return {sha: float(v) for sha, v in zip(shas, values, strict=True)}

    def _gather(self, first: object) -> list[tuple[Prepared, _Ticket]]:
        batch: list[tuple[Prepared, _Ticket]] = [first]  # type: ignore[list-item]
        images = 1 if batch[0][0].pixels is not None else 0
        deadline = time.monotonic() + self.max_wait
        while images < self.max_batch:
            timeout = deadline - time.monotonic()
            try:
                entry = (
                    self._inbox.get(timeout=max(timeout, 0))
                    if timeout > 0
                    else (self._inbox.get_nowait())
                )
            except queue.Empty:
                break
            if entry is _STOP:
                self._inbox.put(_STOP)
                break
            batch.append(entry)  # type: ignore[arg-type]
            if entry[0].pixels is not None:  # type: ignore[index]
                images += 1
        return batch

    def _score(
        self, scorer: Scorer, stamp: ModelStamp, items: list[Prepared], policy: PolicyRule
    ) -> list[Outcome]:
        shas = [p.image.sha256 for p in items if p.image is not None]
        fresh = [sha for sha in dict.fromkeys(shas) if sha not in self._seen]
        cached: dict[str, int] = {}
        if fresh:
            with session_scope(self.database_url) as session:
                cached = existing_verdicts(
                    session, fresh, model_name=stamp.name, model_version=stamp.version
                )
        to_score: dict[str, np.ndarray] = {}
        for p in items:
            if p.image is not None and p.pixels is not None:
                sha = p.image.sha256
                if sha not in self._seen and sha not in cached and sha not in to_score:
                    to_score[sha] = p.pixels
        scores: dict[str, float] = {}
        checks: dict[str, float] = {}
        if to_score:
            started = time.perf_counter()
            if not self.stats.first_batch_at:
                self.stats.first_batch_at = started
            values = scorer.ai_scores(np.stack(list(to_score.values())))
            scores = {sha: float(v) for sha, v in zip(to_score, values, strict=True)}
            checks = self._check_scores(scorer, policy, to_score, scores)
            self.stats.last_batch_at = time.perf_counter()
            self.stats.model_seconds += self.stats.last_batch_at - started
            self._remember_scores(scores)
        self.stats.batches += 1
        self.stats.images += len(shas)
        self.stats.scored += len(scores)
        self.stats.largest_batch = max(self.stats.largest_batch, len(to_score))
        if self.stats.batches % 20 == 0 or self._inbox.empty():
            log.info("engine: %s", self.stats.summary())

        outcomes: list[Outcome] = []
        for p in items:
            if p.image is None:
                outcomes.append(
                    Outcome(
                        item_id=p.item_id,
                        scan_id=p.scan_id,
                        status=ItemStatus.ERROR,
                        error_reason=p.error_reason or ErrorReason.CORRUPT,
                        error_detail=p.error_detail,
                    )
                )
                continue
            sha = p.image.sha256
            check = None
            if sha in scores:
                status, score, check = ItemStatus.SCORED, scores.pop(sha), checks.get(sha)
            elif sha in to_score:  # same bytes as an item scored in this batch
                status, score = ItemStatus.DUPLICATE, None
            else:  # a verdict was stored earlier (by this run or before it)
                status, score = ItemStatus.CACHED, None
            outcomes.append(
                Outcome(
                    item_id=p.item_id,
                    scan_id=p.scan_id,
                    status=status,
                    image=p.image,
                    ai_score=score,
                    check_score=check,
                )
            )
        return outcomes

    def _remember_scores(self, scores: dict[str, float]) -> None:
        self._seen.update(scores)
        while len(self._seen) > self._remember:
            self._seen.popitem(last=False)

    def _drain_failing(self, exc: BaseException) -> None:
        while True:
            entry = self._inbox.get()
            if entry is _STOP:
                self._outbox.put(_STOP)
                return
            entry[1].fail(exc)  # type: ignore[index]

    # -- writer thread -----------------------------------------------------------------

    def _write_loop(self) -> None:
        while True:
            entry = self._outbox.get()
            if entry is _STOP:
                return
            assert isinstance(entry, _Written)
            outcomes, stamp, batch = entry.outcomes, entry.stamp, entry.batch
            try:
                with session_scope(self.database_url) as session:
                    redone = record_outcomes(
                        session,
                        outcomes,
                        stamp,
                        policy=entry.policy,
                        outbox_targets=self.outbox_targets,
                    )
            except Exception as exc:
                if is_transient(exc):  # said once per outage, not once per batch
                    OUTAGE.failed(exc, retry_s=self.transient_retry_s)
                else:
                    log.exception("writing a batch of %d outcomes failed", len(outcomes))
                # The scores are lost with the transaction: forget them, so a retry rescores.
                for outcome in outcomes:
                    if outcome.image is not None:
                        self._seen.pop(outcome.image.sha256, None)
                for _, ticket in batch:
                    ticket.fail(exc)
                continue
            OUTAGE.succeeded()
            if redone:
                self.stats.redone += redone
                log.warning(
                    "%d of %d items were already finished by another delivery: work done "
                    "twice (a batch outlived the visibility timeout?); the first write stands",
                    redone,
                    len(outcomes),
                )
            counts: dict[int, int] = {}
            tickets: dict[int, _Ticket] = {}
            for _, ticket in batch:
                counts[id(ticket)] = counts.get(id(ticket), 0) + 1
                tickets[id(ticket)] = ticket
            for key, ticket in tickets.items():
                ticket.done(counts[key])
