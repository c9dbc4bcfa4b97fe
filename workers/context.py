"""Per-process worker state: the fetch pool, the model and the batching engine.

Created lazily in the process that does the work (after any fork), once per process.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from db.verdicts import ModelStamp
from modscan.settings import Settings
from workers.classifier.artifact import read_card
from workers.classifier.runner import ModelRunner, ensure_artifact
from workers.engine import BatchEngine, Scorer
from workers.fetch import Fetcher

log = logging.getLogger(__name__)


class WorkerContext:
    def __init__(self, settings: Settings, *, model_dir: Path | None = None) -> None:
        self.settings = settings
        self.database_url = settings.resolved_database_url
        self.model_dir = model_dir or ensure_artifact(settings)
        self.card = read_card(self.model_dir)
        self.fetcher = Fetcher(settings)
        self.pool = ThreadPoolExecutor(
            max_workers=settings.fetch_concurrency, thread_name_prefix="modscan-fetch"
        )
        self.runner: ModelRunner | None = None
        self.engine = BatchEngine(
            database_url=self.database_url,
            scorer_factory=self._load_model,
            stamp=self.stamp,
            max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms,
            outbox_targets=settings.outbox_targets,
            transient_retry_s=settings.transient_retry_s,
        )

    @property
    def input_size(self) -> int:
        return self.card.input_size

    def stamp(self) -> ModelStamp:
        band = self.card.uncertain_band
        return ModelStamp(
            name=self.card.name,
            version=self.card.version,
            threshold=self.card.threshold,
            uncertain_band=(band[0], band[1]) if band else None,
        )

    def _load_model(self) -> Scorer:
        runner = ModelRunner(self.model_dir, self.settings)
        log.info(
            "model %s %s loaded (%s); warming up batch shapes %s",
            self.card.name,
            self.card.version,
            runner.setup,
            runner.batch_sizes,
        )
        runner.warm_up()
        self.runner = runner
        return runner

    def close(self) -> None:
        self.engine.close()
        self.pool.shutdown(wait=False, cancel_futures=True)


_context: WorkerContext | None = None
_context_lock = threading.Lock()


def get_context(settings: Settings) -> WorkerContext:
    global _context
    with _context_lock:
        if _context is None:
            _context = WorkerContext(settings)
            _context.engine.start()
        return _context
