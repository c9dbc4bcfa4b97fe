"""Liveness for load balancers and operators: the database and the broker answer."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import SettingsDep
from api.probes import check_broker, check_database
from api.schemas import ErrorDetail, HealthOut

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=HealthOut,
    summary="Check the database (SELECT 1) and the broker (ping)",
    response_model_exclude_none=True,
    responses={503: {"model": HealthOut, "description": "The database or broker failed"}},
)
def healthz(settings: SettingsDep, response: Response) -> HealthOut:
    database = check_database(settings)
    broker = check_broker(settings)
    failed = [
        f"{part} {state}"
        for part, state in (("database", database), ("broker", broker))
        if state.startswith("unavailable")
    ]
    if not failed:
        return HealthOut(status="ok", database=database, broker=broker)
    response.status_code = 503
    return HealthOut(
        status="unavailable",
        database=database,
        broker=broker,
        error=ErrorDetail(code="unhealthy", message="; ".join(failed)),
    )
