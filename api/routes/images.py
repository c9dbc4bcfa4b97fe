"""Images: one image by its sha256, with its verdict history and where it was seen."""

from __future__ import annotations

from fastapi import APIRouter, Path

from api.deps import Reader, SessionDep, SettingsDep
from api.errors import not_found
from api.schemas import ErrorOut, ImageHistoryOut
from db.browse import image_history

router = APIRouter(prefix="/images", tags=["images"])


@router.get(
    "/{sha256}",
    response_model=ImageHistoryOut,
    summary="An image, every verdict about it and the sources it was seen under",
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
def read_image(
    session: SessionDep,
    settings: SettingsDep,
    caller: Reader,
    sha256: str = Path(pattern=r"^[0-9a-fA-F]{64}$", description="Hex SHA-256 of the bytes"),
) -> ImageHistoryOut:
    sha256 = sha256.lower()
    history = image_history(
        session,
        sha256=sha256,
        max_sources=settings.api_max_page_size,
        owner=caller.owner_filter,
    )
    if history is None:
        raise not_found(f"image {sha256}")
    return ImageHistoryOut.build(history)
