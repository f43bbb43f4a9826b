"""Image bytes to the digits model's input: formats, polarity, sizes, and what is refused."""

import io
import struct
import time
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from models.digits import digits_split
from shared.mechanisms.digit_images import (
    DigitImageSpec,
    EmptyImage,
    ImageError,
    ImageTooLarge,
    NotAnImage,
    TruncatedImage,
    image_to_digits,
    render_digit,
)

SEVEN = digits_split().x_test[np.flatnonzero(digits_split().y_test == 7)[0]]


def encoded(image: Image.Image, fmt: str = "PNG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels in a few dozen bytes (a bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.mark.parametrize("scale", [1, 4, 7])
def test_a_rendered_row_comes_back_exactly(scale: int) -> None:
    image = render_digit(SEVEN, scale=scale)
    assert image.size == (8 * scale, 8 * scale)
    np.testing.assert_array_equal(image_to_digits(encoded(image))[0], SEVEN)


def test_light_ink_on_dark_is_read_as_is() -> None:
    grey = np.rint(SEVEN.reshape(8, 8) * 255 / 16).astype(np.uint8)
    image = Image.fromarray(grey).resize((40, 40), Image.Resampling.NEAREST)
    np.testing.assert_array_equal(image_to_digits(encoded(image))[0], SEVEN)


def test_colour_jpeg_and_transparent_png_come_back_close() -> None:
    colour = render_digit(SEVEN, scale=8, ink=(200, 0, 0), paper=(230, 230, 255))
    jpeg = image_to_digits(encoded(colour, "JPEG", quality=85))[0]
    assert np.abs(jpeg - SEVEN).max() <= 1
    ink = np.asarray(render_digit(SEVEN, scale=4))
    rgba = np.zeros((*ink.shape, 4), dtype=np.uint8)
    rgba[..., 3] = 255 - ink  # black ink, transparent paper
    transparent = image_to_digits(encoded(Image.fromarray(rgba)))[0]
    np.testing.assert_array_equal(transparent, SEVEN)


def test_faint_ink_is_stretched_and_a_wide_image_is_padded() -> None:
    faint = render_digit(SEVEN, scale=4, ink=(150, 150, 150), paper=(255, 255, 255))
    assert np.abs(image_to_digits(encoded(faint))[0] - SEVEN).max() <= 1
    wide = Image.new("L", (64, 32), 255)
    wide.paste(render_digit(SEVEN, scale=4), (16, 0))
    values = image_to_digits(encoded(wide))[0].reshape(8, 8)
    assert values[:2].sum() == 0  # the top and bottom quarters are padding
    assert values[-2:].sum() == 0
    assert values[2:6].max() > 8  # the digit, shrunk by half


def decoded_sizes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """The size of every image Pillow decodes from now on (empty: nothing decompressed)."""
    sizes: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def recording(image: ImageFile.ImageFile) -> Any:
        sizes.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", recording)
    return sizes


def test_a_big_jpeg_photo_is_decoded_at_reduced_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    big = render_digit(SEVEN, scale=500, ink=(0, 0, 0), paper=(255, 255, 255))  # 4000x4000
    data = encoded(big, "JPEG", quality=80)
    sizes = decoded_sizes(monkeypatch)
    started = time.perf_counter()
    values = image_to_digits(data)
    print(f"a 4000x4000 JPEG to digits in {time.perf_counter() - started:.3f} s")
    assert np.abs(values[0] - SEVEN).max() <= 1
    assert set(sizes) == {(500, 500)}  # JPEG's draft mode: DCT scale 1/8, still 4x the 8x8 grid


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"", EmptyImage, "the body is empty"),
        (b"hello, not an image", NotAnImage, "not a PNG or JPEG image"),
        (b'{"instances": [[1, 2]]}', NotAnImage, "not a PNG or JPEG image"),
        (encoded(Image.new("L", (8, 8)), "GIF"), NotAnImage, "not a PNG or JPEG image"),
        (encoded(Image.new("L", (8, 8)), "BMP"), NotAnImage, "not a PNG or JPEG image"),
    ],
)
def test_what_is_not_an_image_is_refused(data: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        image_to_digits(data)
    assert caught.value.status == 422


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_truncated_image_is_refused(fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    data = encoded(Image.fromarray(noise), fmt)
    with pytest.raises(TruncatedImage, match="truncated or corrupt") as caught:
        image_to_digits(data[: len(data) // 2])
    assert caught.value.code == "invalid_image"
    with pytest.raises(ImageError):
        image_to_digits(data[:20])


def test_too_many_pixels_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = decoded_sizes(monkeypatch)
    small_limit = DigitImageSpec(max_pixels=10_000)
    with pytest.raises(ImageTooLarge, match=r"101x100 = 10100 pixels; at most 10000") as caught:
        image_to_digits(encoded(Image.new("L", (101, 100), 255)), small_limit)
    assert (caught.value.status, caught.value.code) == (413, "image_too_large")
    for width in (6000, 100_000):  # over our limit; over Pillow's own bomb limit
        with pytest.raises(ImageTooLarge, match=r"pixels; at most \d+ are accepted"):
            image_to_digits(png_header_only(width, width))
    assert sizes == []  # refused from the header: nothing decompressed


def test_render_digit_needs_a_square() -> None:
    with pytest.raises(ValueError, match="not a square"):
        render_digit(np.zeros(10))
