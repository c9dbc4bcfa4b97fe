"""Scans: start one on an S3 prefix, follow its progress."""

from __future__ import annotations

from fastapi import APIRouter, Path, Response

from api.deps import Reader, SessionDep, SettingsDep, Submitter
from api.enqueue import submit_scan
from api.errors import not_found
from api.schemas import ErrorOut, ScanCreate, ScanOut
from db.browse import get_scan
from db.scans import scan_counts

router = APIRouter(prefix="/scans", tags=["scans"])

ScanId = Path(ge=1, le=2**63 - 1, description="The scan's id")


@router.post(
    "",
    status_code=202,
    response_model=ScanOut,
    summary="Start a scan of an S3 prefix",
    responses={
        400: {"model": ErrorOut, "description": "Not an s3://bucket[/prefix] URI"},
        503: {"model": ErrorOut, "description": "The task broker is unavailable"},
    },
)
def create_scan(
    body: ScanCreate,
    settings: SettingsDep,
    session: SessionDep,
    response: Response,
    caller: Submitter,
) -> ScanOut:
    """Record the scan and queue its listing; poll ``GET /v1/scans/{id}`` for progress."""
    scan_id = submit_scan(settings, body.source, actor=caller.actor)
    scan = get_scan(session, scan_id=scan_id)
    if scan is None:  # start_scan commits before it enqueues, so this is a bug
        raise RuntimeError(f"scan {scan_id} was started but is not in the database")
    response.headers["Location"] = f"/v1/scans/{scan_id}"
    return ScanOut.build(scan, scan_counts(session, scan_id))


@router.get(
    "/{scan_id}",
    response_model=ScanOut,
    summary="A scan's status, counts and progress",
    responses={404: {"model": ErrorOut}},
)
def read_scan(session: SessionDep, caller: Reader, scan_id: int = ScanId) -> ScanOut:
    scan = get_scan(session, scan_id=scan_id)
    # Another submitter's scan is as absent as a scan that does not exist.
    if scan is None or caller.owner_filter not in (None, scan.created_by):
        raise not_found(f"scan {scan_id}")
    return ScanOut.build(scan, scan_counts(session, scan_id))
