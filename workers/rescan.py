"""Rescoring stored images with another model version, and which verdicts flip.

A rescan is a scan of its own (kind ``rescan``): its items are the sources the chosen
images were last seen under, fetched and scored again through the same pipeline (fetch,
decode, batch, verdicts, policy, audit, outbox). The old verdicts stay; the report
compares each image's previous verdict with the new model's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from db.items import SourceRecord, register_sources
from db.models import Scan
from db.rescans import choose_sources, source_record
from db.scans import create_scan, finish_listing
from db.session import session_scope
from modscan.settings import Settings
from workers.dispatch import Dispatch
from workers.embedded import Lister

__all__ = ["PlannedRescan", "create_rescan", "rescan_lister"]


@dataclass(frozen=True)
class PlannedRescan:
    rescan_id: int
    records: list[SourceRecord]
    scored_before: dict[str, str]  # source uri → sha256 scored then


def create_rescan(
    settings: Settings,
    *,
    scan_id: int | None,
    since: datetime | None,
    actor: str,
) -> PlannedRescan:
    """The rescan's scan row and the sources it will score again."""
    scope = (
        f"scan={scan_id}" if scan_id is not None else f"since={since.isoformat() if since else ''}"
    )
    with session_scope(settings.resolved_database_url) as session:
        if scan_id is not None and session.get(Scan, scan_id) is None:
            raise LookupError(f"scan {scan_id} does not exist")
        chosen = choose_sources(session, scan_id=scan_id, since=since)
        scan = create_scan(session, source_uri=f"rescan:{scope}", kind="rescan", created_by=actor)
        return PlannedRescan(
            rescan_id=scan.id,
            records=[source_record(source) for source, _ in chosen],
            scored_before={source.uri: sha for source, sha in chosen},
        )


def rescan_lister(records: Sequence[SourceRecord], chunk_size: int) -> Lister:
    """A lister for run_embedded_scan that registers the chosen sources, then finishes."""

    def lister(settings: Settings, scan_id: int, dispatch: Dispatch) -> int:
        for start in range(0, len(records), chunk_size):
            with session_scope(settings.resolved_database_url) as session:
                items = register_sources(session, scan_id, records[start : start + chunk_size])
            if items:
                dispatch(scan_id, items)
        with session_scope(settings.resolved_database_url) as session:
            finish_listing(session, scan_id)
        return len(records)

    return lister
