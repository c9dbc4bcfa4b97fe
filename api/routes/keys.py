"""API keys: issue, list and revoke (admins; auditors may list)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query

from api.admin_schemas import IssuedKeyOut, KeyIn, KeyListOut, KeyOut
from api.deps import Admin, Auditor, SessionDep
from api.errors import not_found
from api.schemas import ErrorOut
from db.keys import UnknownKey, issue_key, list_keys, revoke_key

router = APIRouter(prefix="/keys", tags=["keys"])


@router.get("", response_model=KeyListOut, summary="API keys (never their secrets)")
def read_keys(
    session: SessionDep, _caller: Auditor, include_revoked: bool = Query(default=False)
) -> KeyListOut:
    return KeyListOut(
        items=[KeyOut.build(k) for k in list_keys(session, include_revoked=include_revoked)]
    )


@router.post("", status_code=201, response_model=IssuedKeyOut, summary="Issue a key (admin)")
def create_key(body: KeyIn, session: SessionDep, caller: Admin) -> IssuedKeyOut:
    issued = issue_key(session, name=body.name, role=body.role, actor=caller.actor)
    session.commit()
    return IssuedKeyOut(**KeyOut.build(issued.key).model_dump(), token=issued.token)


@router.delete(
    "/{key_id}",
    response_model=KeyOut,
    summary="Revoke a key (admin); it stops working at once",
    responses={404: {"model": ErrorOut}},
)
def delete_key(
    session: SessionDep,
    caller: Admin,
    key_id: str = Path(pattern=r"^[0-9a-f]{8,32}$"),
) -> KeyOut:
    try:
        key = revoke_key(session, key_id=key_id, actor=caller.actor)
    except UnknownKey as exc:
        raise not_found(f"key {key_id}") from exc
    session.commit()
    return KeyOut.build(key)
