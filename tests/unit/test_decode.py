"""Tests for workers.classifier.decode: every input is generated here with Pillow or raw bytes."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import GifImagePlugin, Image, ImageFile, JpegImagePlugin, features

from workers.classifier.decode import (
    ALLOWED_FORMATS,
    REASONS,
    DecodedImage,
    DecodeLimits,
    ImageError,
    decode_image,
)

RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)
AVIF_OK = features.check("avif")
needs_avif = pytest.mark.skipif(not AVIF_OK, reason="this Pillow build has no AVIF support")


# --- helpers ------------------------------------------------------------------------------


def encode(im: Image.Image, fmt: str, **params: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **params)
    return buf.getvalue()


def two_tone(width: int, height: int, left: tuple[int, ...], right: tuple[int, ...]) -> Image.Image:
    """Left half ``left``, right half ``right`` (RGB)."""
    im = Image.new("RGB", (width, height), right)
    im.paste(left, (0, 0, width // 2, height))
    return im


def decode_error(data: bytes, **kwargs: Any) -> ImageError:
    with pytest.raises(ImageError) as info:
        decode_image(data, **kwargs)
    return info.value


def assert_close(pixel: Any, expected: tuple[int, int, int], tol: int) -> None:
    diff = np.abs(np.asarray(pixel, dtype=int) - np.asarray(expected))
    assert diff.max() <= tol, f"{tuple(int(v) for v in pixel)} is not within {tol} of {expected}"


def png_declaring(width: int, height: int) -> bytes:
    """A valid 1x1 PNG whose IHDR (CRC fixed up) claims width x height: a tiny bomb."""
    data = bytearray(encode(Image.new("1", (1, 1)), "PNG"))
    assert data[12:16] == b"IHDR"
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(data[12:29]))
    return bytes(data)


def gif_bytes(
    screen: tuple[int, int], frames: int, frame_box: tuple[int, int, int, int] = (0, 0, 1, 1)
) -> bytes:
    """A hand-built GIF: 2-colour global palette, ``frames`` one-pixel image blocks."""
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    # image descriptor, then LZW min code size 2 and one sub-block: clear, index 0, end.
    block = b"," + struct.pack("<HHHHB", *frame_box, 0) + b"\x02\x02\x44\x01\x00"
    return header + block * frames + b";"


def frames(count: int) -> list[Image.Image]:
    return [Image.new("RGB", (8, 8), (20 * i % 256, 255 - 20 * i % 256, 90)) for i in range(count)]


def save_animation(fmt: str, count: int) -> bytes:
    first, *rest = frames(count)
    return encode(first, fmt, save_all=True, append_images=rest)


# --- contract -----------------------------------------------------------------------------


def test_image_error_has_reason_detail_and_str() -> None:
    err = ImageError("corrupt", "empty file")
    assert (err.reason, err.detail, str(err)) == ("corrupt", "empty file", "corrupt: empty file")
    assert REASONS == ("corrupt", "too_large", "unsupported_format")
    with pytest.raises(ValueError):
        ImageError("source_missing_typo", "x")


def test_allowed_formats() -> None:
    assert set(ALLOWED_FORMATS) >= {"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"}
    assert ("AVIF" in ALLOWED_FORMATS) == AVIF_OK
    assert not {"EPS", "PDF", "PSD", "JPEG2000"} & set(ALLOWED_FORMATS)


@pytest.mark.parametrize("size", [1, 7, 32])
def test_output_contract(size: int) -> None:
    result = decode_image(encode(two_tone(40, 30, RED, BLUE), "PNG"), size=size)
    assert isinstance(result, DecodedImage)
    assert result.pixels.shape == (size, size, 3)
    assert result.pixels.dtype == np.uint8
    assert result.pixels.flags.c_contiguous
    assert (result.width, result.height, result.format) == (40, 30, "PNG")


def test_bad_arguments_are_caller_errors() -> None:
    with pytest.raises(ValueError):
        decode_image(b"x", size=0)
    with pytest.raises(ValueError):
        DecodeLimits(max_frames=0)


# --- size limits --------------------------------------------------------------------------


def test_zero_bytes_is_corrupt() -> None:
    err = decode_error(b"", size=32)
    assert (err.reason, err.detail) == ("corrupt", "empty file")


def test_over_max_bytes_is_too_large_before_parsing() -> None:
    png = encode(Image.new("RGB", (64, 64), RED), "PNG")
    limits = DecodeLimits(max_bytes=len(png) - 1)
    assert decode_error(png, size=32, limits=limits).reason == "too_large"
    # garbage would be unsupported_format, but the byte cap is checked first
    assert decode_error(b"hello" * 300, size=32, limits=limits).reason == "too_large"
    assert decode_image(png, size=32, limits=DecodeLimits(max_bytes=len(png))).width == 64


@pytest.mark.parametrize(
    ("width", "height", "detail"),
    [
        (20000, 20000, "decompression bomb"),  # Pillow's DecompressionBombError
        # Pillow's DecompressionBombWarning is made an error at import; pytest resets warning
        # filters per test, so here our own max_pixels check catches it instead.
        (10000, 10000, "100000000 pixels"),
        (8000, 7000, "exceeds limit of 50000000"),  # our own max_pixels, under Pillow's limit
    ],
)
def test_png_decompression_bomb(width: int, height: int, detail: str) -> None:
    data = png_declaring(width, height)
    assert len(data) < 100
    filters_before = list(warnings.filters)
    err = decode_error(data, size=32)
    assert err.reason == "too_large"
    assert detail in err.detail
    assert warnings.filters == filters_before
    assert Image.MAX_IMAGE_PIXELS == 89_478_485
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


@pytest.mark.parametrize(
    ("screen", "frame_box"),
    [
        ((20000, 20000), (0, 0, 1, 1)),  # huge logical screen
        ((8000, 7000), (0, 0, 1, 1)),  # over our default cap only
        ((1, 1), (19999, 19999, 1, 1)),  # tiny screen, frame placed far outside grows the canvas
    ],
)
def test_gif_decompression_bomb(
    screen: tuple[int, int], frame_box: tuple[int, int, int, int]
) -> None:
    assert decode_error(gif_bytes(screen, 1, frame_box), size=32).reason == "too_large"


def test_max_pixels_boundary() -> None:
    limits = DecodeLimits(max_pixels=100)
    assert decode_image(encode(Image.new("L", (10, 10)), "PNG"), size=4, limits=limits).width == 10
    err = decode_error(encode(Image.new("L", (11, 10)), "PNG"), size=4, limits=limits)
    assert err.reason == "too_large"


# --- animation ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP", "TIFF"])
def test_too_many_frames(fmt: str) -> None:
    data = save_animation(fmt, 10)
    err = decode_error(data, size=4, limits=DecodeLimits(max_frames=5))
    assert (err.reason, err.detail) == ("too_large", "more than 5 animation frames")
    result = decode_image(data, size=4, limits=DecodeLimits(max_frames=10))
    assert_close(result.pixels[2, 2], (0, 255, 90), tol=12)  # frame 0, not the last one


def test_ten_thousand_frame_gif_is_rejected_without_decoding_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prepared: list[int] = []
    original = GifImagePlugin.GifImageFile.load_prepare

    def spy(self: GifImagePlugin.GifImageFile) -> None:
        prepared.append(self.tell())
        original(self)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "load_prepare", spy)
    assert decode_error(gif_bytes((64, 64), 10_000), size=4).reason == "too_large"
    assert prepared == []  # counted by parsing block headers only
    result = decode_image(gif_bytes((64, 64), 1000), size=4)  # exactly the default cap
    assert prepared == [0]  # only frame 0 was decoded
    assert (result.width, result.height) == (64, 64)


# --- bad bytes ----------------------------------------------------------------------------


def _noise_jpeg() -> bytes:
    rng = np.random.default_rng(1)
    return encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(_noise_jpeg()[: len(_noise_jpeg()) // 2], id="jpeg-half"),
        pytest.param(_noise_jpeg()[:-10], id="jpeg-missing-tail"),
        pytest.param(_noise_jpeg()[:30], id="jpeg-header-only"),
        pytest.param(b"\xff\xd8\xff" + b"\x00" * 50, id="jpeg-magic-then-zeros"),
        pytest.param(b"\x89PNG\r\n\x1a\n" + b"junk" * 10, id="png-magic-then-junk"),
        pytest.param(b"GIF89a\x00", id="gif-header-only"),
        pytest.param(b"RIFF\x10\x00\x00\x00WEBPVP8 ", id="webp-header-only"),
        pytest.param(b"II*\x00\x08\x00\x00\x00", id="tiff-header-only"),
    ],
)
@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the short TIFF IFD
def test_truncated_or_garbled_is_corrupt(data: bytes) -> None:
    assert decode_error(data, size=32).reason == "corrupt"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png_is_not_padded() -> None:
    rng = np.random.default_rng(2)
    png = encode(Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)), "PNG")
    err = decode_error(png[: len(png) // 2], size=32)
    assert err.reason == "corrupt"
    assert "truncated" in err.detail


@pytest.mark.parametrize(
    ("data", "looks_like"),
    [
        (b"just some notes, not a picture\n", "text"),
        (b"<!DOCTYPE html>\n<html><body>404 Not Found</body></html>", "HTML"),
        (b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n%%EOF\n", "PDF"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "EPS"),
        (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "SVG"),
        (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"/>', "SVG"),
        (b"PK\x03\x04" + b"\x00" * 40, "ZIP"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIF"),
        (bytes(range(256)) * 2, "unrecognised"),
    ],
    ids=["text", "html", "pdf", "eps", "svg", "svg-xml", "zip", "heif", "binary"],
)
def test_non_images_named_jpg_are_unsupported(data: bytes, looks_like: str) -> None:
    err = decode_error(data, size=32)  # the name/extension never reaches the decoder
    assert err.reason == "unsupported_format"
    assert looks_like in err.detail


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt TIFF tags
def test_robustness_sweep_only_raises_image_error() -> None:
    """Truncations and byte flips of small images in every format never escape as non-ImageError."""
    rng = np.random.default_rng(3)
    source = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    limits = DecodeLimits(max_pixels=1_000_000, max_frames=10)
    outcomes: set[str] = set()
    for fmt in ALLOWED_FORMATS:
        data = encode(source, fmt)
        variants = [data[:cut] for cut in range(1, len(data), max(1, len(data) // 12))]
        for pos in range(0, min(len(data), 200), 7):
            flipped = bytearray(data)
            flipped[pos] ^= 0xFF
            variants.append(bytes(flipped))
        for variant in variants:
            try:
                result = decode_image(variant, size=4, limits=limits)
            except ImageError as err:
                outcomes.add(err.reason)
            else:
                assert result.pixels.shape == (4, 4, 3)
                outcomes.add("ok")
    assert {"ok", "corrupt"} <= outcomes


# --- unusual but valid images -------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(1, 100_000), (100_000, 1)])
def test_extreme_aspect_ratio(width: int, height: int) -> None:
    result = decode_image(encode(Image.new("RGB", (width, height), GREEN), "PNG"), size=32)
    assert result.pixels.shape == (32, 32, 3)
    assert (result.width, result.height) == (width, height)
    assert (result.pixels == np.array(GREEN, dtype=np.uint8)).all()


def test_cmyk_jpeg_keeps_colour() -> None:
    cmyk_red = Image.new("CMYK", (48, 48), (0, 255, 255, 0))
    data = encode(cmyk_red, "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    mean = decode_image(data, size=32).pixels.reshape(-1, 3).mean(axis=0)
    assert mean[0] > 230 and mean[1] < 30 and mean[2] < 30, mean


def test_sixteen_bit_png_is_rescaled_not_clipped() -> None:
    values = np.zeros((64, 64), dtype=np.uint16)
    values[:, :32] = 32768  # mid-grey
    values[:32, 32:] = 65535
    values[32:, 32:] = 1000  # would become 255 if Pillow clipped instead of rescaling
    data = encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    pixels = decode_image(data, size=32).pixels
    assert_close(pixels[16, 4], (128, 128, 128), tol=1)
    assert_close(pixels[4, 28], (255, 255, 255), tol=0)
    assert_close(pixels[28, 28], (4, 4, 4), tol=1)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("I", 40000, 156),  # 32-bit int holding 16-bit data
        ("I", 200, 200),  # 32-bit int holding 8-bit data
        ("F", 0.5, 128),  # normalised float
    ],
)
def test_wide_tiff_modes_are_rescaled(mode: str, value: float, expected: int) -> None:
    data = encode(Image.new(mode, (8, 8), value), "TIFF")
    assert Image.open(io.BytesIO(data)).mode == mode
    assert_close(decode_image(data, size=4).pixels[1, 1], (expected,) * 3, tol=1)


def test_palette_png_transparency_becomes_white() -> None:
    im = Image.new("P", (64, 64), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.paste(0, (0, 0, 32, 64))  # left half uses index 0 ...
    data = encode(im, "PNG", transparency=0)  # ... which is transparent black
    opened = Image.open(io.BytesIO(data))
    assert opened.mode == "P" and "transparency" in opened.info
    pixels = decode_image(data, size=32).pixels
    assert_close(pixels[16, 4], WHITE, tol=0)
    assert_close(pixels[16, 28], RED, tol=0)


@pytest.mark.parametrize(
    ("im", "fmt", "left", "right"),
    [
        (Image.new("RGBA", (32, 32), (0, 0, 255, 0)), "PNG", WHITE, WHITE),
        (Image.new("LA", (32, 32), (0, 128)), "PNG", (127, 127, 127), (127, 127, 127)),
        (Image.new("1", (32, 32), 1), "PNG", WHITE, WHITE),
        (Image.new("L", (32, 32), 77), "JPEG", (77, 77, 77), (77, 77, 77)),
        (two_tone(32, 32, RED, BLUE).convert("P"), "GIF", RED, BLUE),
        (two_tone(32, 32, RED, BLUE).convert("RGBA"), "TIFF", RED, BLUE),
    ],
    ids=["RGBA-clear", "LA-half", "1", "L-jpeg", "P-gif", "RGBA-tiff"],
)
def test_modes_convert_to_rgb(
    im: Image.Image, fmt: str, left: tuple[int, int, int], right: tuple[int, int, int]
) -> None:
    pixels = decode_image(encode(im, fmt), size=32).pixels
    assert_close(pixels[16, 4], left, tol=2)
    assert_close(pixels[16, 28], right, tol=2)


def test_gif_transparency_becomes_white() -> None:
    im = Image.new("P", (16, 16), 1)
    im.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    im.paste(0, (0, 0, 8, 16))
    data = encode(im, "GIF", transparency=0)
    pixels = decode_image(data, size=16).pixels
    assert_close(pixels[8, 2], WHITE, tol=0)
    assert_close(pixels[8, 13], GREEN, tol=0)


@pytest.mark.parametrize(
    ("orientation", "size", "first_half", "other_half"),
    [
        # a 64x32 image, red on the left and blue on the right, with an EXIF orientation tag;
        # halves are given as (row, col) probes into the 32x32 output.
        (1, (64, 32), (16, 4), (16, 28)),  # as stored: red left
        (3, (64, 32), (16, 28), (16, 4)),  # rotated 180: red right
        (6, (32, 64), (4, 16), (28, 16)),  # rotate 90 clockwise to display: red on top
        (8, (32, 64), (28, 16), (4, 16)),  # rotate 90 counter-clockwise: red at the bottom
    ],
)
def test_exif_orientation_is_applied(
    orientation: int,
    size: tuple[int, int],
    first_half: tuple[int, int],
    other_half: tuple[int, int],
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(two_tone(64, 32, RED, BLUE), "JPEG", exif=exif.tobytes(), quality=95)
    result = decode_image(data, size=32)
    assert (result.width, result.height) == size
    assert_close(result.pixels[first_half], RED, tol=40)
    assert_close(result.pixels[other_half], BLUE, tol=40)


def test_large_jpeg_uses_draft_and_reports_original_size(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str | None, tuple[int, int] | None]] = []
    original = JpegImagePlugin.JpegImageFile.draft

    def spy(self: JpegImagePlugin.JpegImageFile, mode: str | None, size: Any) -> Any:
        calls.append((mode, size))
        return original(self, mode, size)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    result = decode_image(encode(two_tone(1024, 768, RED, BLUE), "JPEG"), size=32)
    assert calls == [("RGB", (64, 64))]
    assert (result.width, result.height) == (1024, 768)
    assert_close(result.pixels[16, 4], RED, tol=40)
    calls.clear()
    decode_image(encode(two_tone(100, 100, RED, BLUE), "JPEG"), size=32)
    assert calls == []  # small images are decoded at full size


@pytest.mark.parametrize(
    ("fmt", "dims", "tol"),
    [
        ("JPEG", (640, 480), 40),
        ("PNG", (300, 200), 0),
        ("WEBP", (120, 80), 40),
        ("GIF", (96, 64), 0),
        ("BMP", (96, 64), 0),
        ("TIFF", (96, 64), 0),
        pytest.param("AVIF", (96, 64), 40, marks=needs_avif),
    ],
)
def test_normal_images_downscale_to_size(fmt: str, dims: tuple[int, int], tol: int) -> None:
    result = decode_image(encode(two_tone(*dims, RED, BLUE), fmt), size=32)
    assert result.format == fmt
    assert (result.width, result.height) == dims
    assert result.pixels.shape == (32, 32, 3)
    assert_close(result.pixels[16, 4], RED, tol)
    assert_close(result.pixels[16, 28], BLUE, tol)


def test_resize_squashes_whole_image_without_cropping() -> None:
    bands = Image.new("RGB", (128, 32), WHITE)
    for i, colour in enumerate([RED, GREEN, BLUE]):
        bands.paste(colour, (32 * i, 0, 32 * (i + 1), 32))
    pixels = decode_image(encode(bands, "PNG"), size=32).pixels
    for col, colour in zip([4, 12, 20, 28], [RED, GREEN, BLUE, WHITE], strict=True):
        assert_close(pixels[16, col], colour, tol=0)


def test_resize_follows_the_card() -> None:
    """A 1-pixel checkerboard: nearest keeps pure black/white, bilinear averages to grey."""
    board = Image.new("L", (64, 64))
    board.putdata([255 * ((x + y) % 2) for y in range(64) for x in range(64)])
    buffer = io.BytesIO()
    board.save(buffer, "PNG")
    data = buffer.getvalue()
    nearest = decode_image(data, size=32, resize="nearest").pixels
    bilinear = decode_image(data, size=32, resize="bilinear").pixels
    assert set(np.unique(nearest)) <= {0, 255}
    assert 100 < float(bilinear.mean()) < 155 and bilinear.std() < 40
    with pytest.raises(ValueError, match="unknown resize"):
        decode_image(data, size=32, resize="sideways")
