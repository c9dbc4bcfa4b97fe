"""Turn untrusted image bytes into a fixed-size RGB array, or a clear per-image error.

Policy (``docs/reliability.md``, "Bad input"):

* Every failure caused by the input becomes an :class:`ImageError` whose ``reason`` is one of
  :data:`REASONS`; nothing else escapes for bad data, so one bad image never crashes a worker
  or loses a batch.  ``KeyboardInterrupt``, ``SystemExit`` and ``MemoryError`` still propagate,
  and so does ``ValueError`` for a bad ``size`` argument, which is a caller bug.
* Limits are checked before work is done: bytes before any parsing, pixels (``width*height``
  from the header) right after ``Image.open`` and before any decoding, animation frames with a
  bounded walk (never ``n_frames`` on GIF, which walks the whole file).  Pillow's own
  decompression-bomb check is honoured too: ``DecompressionBombWarning`` is turned into an
  error locally, so the effective pixel cap is ``min(max_pixels, Image.MAX_IMAGE_PIXELS)``.
  No Pillow global (``MAX_IMAGE_PIXELS``, ``LOAD_TRUNCATED_IMAGES``) is changed.
* Pillow picks the decoder from the bytes, not the file name, so only
  :data:`ALLOWED_FORMATS` may be opened (never EPS, which runs Ghostscript, nor PDF or SVG).
  Bytes that Pillow cannot identify are sniffed: if they start like an allowed format the file
  is ``corrupt``, anything else (text, HTML, PDF, EPS, SVG, zip, ...) is
  ``unsupported_format``.
* Truncated or garbled data is ``corrupt``; truncated images are never padded with grey.
* Output: EXIF orientation applied, every mode converted to RGB explicitly (alpha and palette
  transparency flattened onto white, CMYK converted, 16-bit and 32-bit greys rescaled rather
  than clipped), then squashed (no crop) to ``size x size`` with bilinear resampling.
  Orientation uses the same table as ``ImageOps.exif_transpose`` but reads the tag itself, so
  unreadable EXIF is ignored instead of failing an otherwise good image.
* ``DecompressionBombWarning`` is made an error once, for the whole process, when this
  module is imported (``warnings.catch_warnings`` per call would race between threads), so
  decoding is safe from a thread pool.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import GifImagePlugin, Image, JpegImagePlugin, UnidentifiedImageError, features

from db.models import ErrorReason

# A decompression bomb is an error in every thread of a process that decodes images.
warnings.simplefilter("error", Image.DecompressionBombWarning)

REASONS = (ErrorReason.CORRUPT, ErrorReason.TOO_LARGE, ErrorReason.UNSUPPORTED_FORMAT)


class ImageError(Exception):
    """A per-image failure: ``reason`` is one of :data:`REASONS`, ``detail`` is for humans."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown ImageError reason {reason!r}; expected one of {REASONS}")
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


@dataclass(frozen=True)
class DecodeLimits:
    """Resource caps applied to every image before it is decoded."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000  # width*height of the source image
    max_frames: int = 1000  # animation frames

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_pixels", "max_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"DecodeLimits.{name} must be positive")


@dataclass(frozen=True)
class DecodedImage:
    """A decoded image ready for the model."""

    pixels: npt.NDArray[np.uint8]  # shape (size, size, 3), RGB, C-contiguous
    width: int  # original width, after EXIF orientation
    height: int  # original height, after EXIF orientation
    format: str  # Pillow format name, e.g. "JPEG"


def _optional_formats() -> tuple[str, ...]:
    optional = (("WEBP", "webp"), ("AVIF", "avif"))
    return tuple(name for name, feature in optional if features.check(feature))


ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "GIF", "BMP", "TIFF", *_optional_formats())

_WHITE = (255, 255, 255)
_EXIF_ORIENTATION = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_AXES = frozenset({5, 6, 7, 8})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "PA"})
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_WIDE_MODES = _SIXTEEN_BIT_MODES | {"I", "F"}
_SNIFF_BYTES = 1024


RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def decode_image(
    data: bytes,
    *,
    size: int,
    limits: DecodeLimits = DecodeLimits(),
    resize: str = "bilinear",
) -> DecodedImage:
    """Decode ``data`` into a ``(size, size, 3)`` uint8 RGB array.

    Raises :class:`ImageError` for any problem with the data itself.
    """
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    if resize not in RESAMPLING:
        raise ValueError(f"unknown resize {resize!r}; choose one of {', '.join(RESAMPLING)}")
    _check_byte_count(data, limits)
    try:
        return _decode(data, size, limits, resize)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(ErrorReason.TOO_LARGE, str(exc)) from exc
    except MemoryError:
        raise
    except Exception as exc:  # any other decoder failure means the bytes are bad
        raise ImageError(ErrorReason.CORRUPT, f"{type(exc).__name__}: {exc}") from exc


def _check_byte_count(data: bytes, limits: DecodeLimits) -> None:
    if len(data) == 0:
        raise ImageError(ErrorReason.CORRUPT, "empty file")
    if len(data) > limits.max_bytes:
        raise ImageError(
            ErrorReason.TOO_LARGE, f"{len(data)} bytes exceeds limit of {limits.max_bytes}"
        )


def _decode(data: bytes, size: int, limits: DecodeLimits, resize: str) -> DecodedImage:
    with _open(data) as im:
        width, height = im.size
        _check_pixels(width, height, limits)
        _select_first_frame(im, limits.max_frames)
        _draft_jpeg(im, size)
        im.load()
        orientation = _orientation(im)
        rgb = _to_rgb(im)
        if orientation in _TRANSPOSE_FOR_ORIENTATION:
            rgb = rgb.transpose(_TRANSPOSE_FOR_ORIENTATION[orientation])
        small = rgb.resize((size, size), RESAMPLING[resize], reducing_gap=3.0)
        image_format = im.format or "unknown"
    if orientation in _SWAPS_AXES:
        width, height = height, width
    pixels = np.ascontiguousarray(np.array(small, dtype=np.uint8))
    return DecodedImage(pixels=pixels, width=width, height=height, format=image_format)


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError as exc:
        raise _unidentified(data) from exc


def _check_pixels(width: int, height: int, limits: DecodeLimits) -> None:
    if width < 1 or height < 1:
        raise ImageError(ErrorReason.CORRUPT, f"invalid dimensions {width}x{height}")
    if width * height > limits.max_pixels:
        raise ImageError(
            ErrorReason.TOO_LARGE,
            f"{width}x{height} = {width * height} pixels exceeds limit of {limits.max_pixels}",
        )


# --- animation ---------------------------------------------------------------------------


def _select_first_frame(im: Image.Image, max_frames: int) -> None:
    """Reject more than ``max_frames`` frames, then leave ``im`` on frame 0."""
    frames = _count_frames(im, max_frames + 1)
    if frames > max_frames:
        raise ImageError(ErrorReason.TOO_LARGE, f"more than {max_frames} animation frames")
    if im.tell() != 0:
        im.seek(0)


def _count_frames(im: Image.Image, cap: int) -> int:
    """Count frames, stopping at ``cap``, without decoding the pixels of later frames."""
    if isinstance(im, GifImagePlugin.GifImageFile) or im.format == "TIFF":
        # GIF and TIFF only know their frame count by walking the file (that is what their
        # n_frames does, unbounded), so walk it ourselves and stop at the cap.
        return _walk_frames(im, cap)
    # PNG (APNG), WebP, AVIF and MPO read n_frames from a header at open time.
    declared = getattr(im, "n_frames", 1)
    return min(declared, cap) if isinstance(declared, int) else 1


def _walk_frames(im: Image.Image, cap: int) -> int:
    frames = 1
    while frames < cap:
        try:
            if isinstance(im, GifImagePlugin.GifImageFile):
                # GifImageFile.seek() decodes and composites every frame it passes (O(canvas)
                # each); update_image=False only parses block headers, as Pillow's n_frames does.
                im._seek(frames, update_image=False)
            else:
                im.seek(frames)  # TIFF: reads the next IFD, no pixel data
        except EOFError:
            break
        frames += 1
    return frames


# --- decoding -----------------------------------------------------------------------------


def _draft_jpeg(im: Image.Image, size: int) -> None:
    """Let libjpeg downscale by 1/2, 1/4 or 1/8 while decoding when the image is large."""
    target = 2 * size
    if isinstance(im, JpegImagePlugin.JpegImageFile) and min(im.size) >= 2 * target:
        im.draft("RGB", (target, target))


def _orientation(im: Image.Image) -> int:
    """EXIF orientation 1..8; unreadable EXIF is ignored rather than failing the image."""
    try:
        value = im.getexif().get(_EXIF_ORIENTATION, 1)
    except Exception:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any mode to RGB; alpha and palette transparency are flattened onto white."""
    if im.mode in _WIDE_MODES:
        im = _wide_to_gray8(im)
    if im.mode in _ALPHA_MODES or "transparency" in im.info:
        return _flatten_on_white(im.convert("RGBA"))
    if im.mode == "RGB":
        return im
    return im.convert("RGB")


def _flatten_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, _WHITE)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _wide_to_gray8(im: Image.Image) -> Image.Image:
    """Rescale 16/32-bit integer or float greys to 0..255 (Pillow's convert() clips them)."""
    values = np.asarray(im, dtype=np.float32)
    if im.mode == "F":
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low, high = _value_range(im.mode, values)
    scaled = (values - low) * (255.0 / (high - low))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _value_range(mode: str, values: npt.NDArray[np.float32]) -> tuple[float, float]:
    """The black and white points: 0..65535 for 16-bit modes, guessed from the data otherwise.

    For 32-bit "I"/"F": floats in 0..1 are normalised, non-negative data up to 255 is 8-bit,
    up to 65535 is 16-bit, and anything else is stretched from its minimum to its maximum.
    """
    if mode in _SIXTEEN_BIT_MODES:
        return 0.0, 65535.0
    low, high = float(values.min()), float(values.max())
    if low >= 0.0:
        for full_scale in (1.0 if mode == "F" else 255.0, 255.0, 65535.0):
            if high <= full_scale:
                return 0.0, full_scale
    return (low, high) if high > low else (low, low + 1.0)


# --- sniffing unidentified bytes ----------------------------------------------------------


def _unidentified(data: bytes) -> ImageError:
    kind = _sniff(data[:_SNIFF_BYTES])
    if kind in ALLOWED_FORMATS:
        return ImageError(ErrorReason.CORRUPT, f"looks like {kind} but could not be parsed")
    if kind is None:
        return ImageError(ErrorReason.UNSUPPORTED_FORMAT, "unrecognised data")
    return ImageError(ErrorReason.UNSUPPORTED_FORMAT, f"looks like {kind}")


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),  # BigTIFF
    (b"MM\x00+", "TIFF"),
    (b"%PDF-", "PDF"),
    (b"%!PS", "PostScript/EPS"),
    (b"\xc5\xd0\xd3\xc6", "PostScript/EPS"),  # DOS EPS binary header
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xffO\xffQ", "JPEG 2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEG XL"),
    (b"\xff\x0a", "JPEG XL"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"PK\x03\x04", "ZIP"),
    (b"\x1f\x8b", "gzip"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
)
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"})


def _sniff(head: bytes) -> str | None:
    """Name what ``head`` (the first bytes of a file) looks like, cheaply; None if unknown."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if _looks_like_bmp(head):
        return "BMP"
    if head[4:8] == b"ftyp":
        return _sniff_iso_media(head)
    return _sniff_text(head)


def _looks_like_bmp(head: bytes) -> bool:
    """Starts with BM, zero reserved bytes, a known DIB header size when that far is present."""
    if head[:2] != b"BM" or head[6:10].strip(b"\x00"):
        return False
    return len(head) < 18 or int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES


def _sniff_iso_media(head: bytes) -> str:
    box_size = int.from_bytes(head[:4], "big")
    box = head[8 : max(12, min(box_size, len(head)))]
    brands = {box[i : i + 4] for i in range(0, len(box) - 3, 4)}
    if b"avif" in brands or b"avis" in brands:
        return "AVIF"
    if brands & _HEIF_BRANDS:
        return "HEIF"
    return "ISO media (video?)"


def _sniff_text(head: bytes) -> str | None:
    if not head or b"\x00" in head:
        return None
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if b"<svg" in text:
        return "SVG"
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text:
        return "HTML"
    if text.startswith(b"<?xml"):
        return "XML"
    printable = sum(1 for byte in head if byte >= 0x20 or byte in b"\t\n\r\f")
    return "text" if printable >= 0.95 * len(head) else None
