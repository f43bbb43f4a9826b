"""Uploaded images to the input of the digits model, as ``load_digits`` made its data.

    tensor = image_to_digits(body)          # (1, 64) float32, values 0..16, ink high

Pillow and numpy only (no onnxruntime, no web framework), so the prep service's
image stays small and any service or job can import it. The steps:

1. **decode** (:func:`open_image`, :func:`load_image`): PNG or JPEG only; the header is read
   first and an image of more than ``max_pixels`` pixels is refused before
   its pixels are decompressed (a decompression bomb: a few kB of PNG can
   claim gigabytes of pixels). Empty, unknown, truncated or corrupt data gets
   an :class:`ImageError` saying which. A JPEG is decoded at a reduced scale
   when it is much larger than needed (libjpeg's DCT scaling: big photos cost
   little), and rotated as its EXIF orientation says.
2. **grey, ink high** (:func:`to_digit_values`): transparency is flattened on
   white, colour converted to luma (ITU-R 601-2), and the image inverted when
   its border is light (dark ink on paper, the usual upload) so that ink is
   high and the background 0, as in the data set. The lightest pixel becomes 0,
   and faint ink (a pencil, coloured paper) is stretched to full strength: in
   the data set, 98 % of the images have a block fully inked (16).
3. **fit and resize**: padded to a square with background (the digit keeps its
   aspect ratio, centred), then shrunk to 8x8 by area averaging, so that each
   value is the share of ink in its block, as the data set counted inked
   pixels per 4x4 block of a 32x32 bitmap.
4. **scale**: 0..255 to 0..16, rounded to whole numbers like the data set's.

An image rendered from the data set (:func:`render_digit`, any ``scale``)
comes back as exactly its 64 values.
"""

import io
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SIDE = 8
MAX_VALUE = 16
FORMATS = ("PNG", "JPEG")
#: The default pixel limit (width x height): 25 megapixels, a large phone photo.
MAX_PIXELS = 25_000_000
_BORDER_LIGHT = 127.5


class ImageError(ValueError):
    """The data is not an image the prep can use; ``status`` and ``code`` are for HTTP answers."""

    status: ClassVar[int] = 422
    code: ClassVar[str] = "invalid_image"


class EmptyImage(ImageError):
    """No bytes at all."""


class NotAnImage(ImageError):
    """The bytes are not a PNG or JPEG image."""


class TruncatedImage(ImageError):
    """The image's data ends early or is corrupt."""


class ImageTooLarge(ImageError):
    """More pixels than allowed: refused before decompressing them (413)."""

    status: ClassVar[int] = 413
    code: ClassVar[str] = "image_too_large"


@dataclass(frozen=True)
class DigitImageSpec:
    """What the model takes: ``side`` x ``side`` values 0..``max_value``, ink high."""

    side: int = SIDE
    max_value: float = MAX_VALUE
    max_pixels: int = MAX_PIXELS
    round_values: bool = True
    #: Faint ink (darkest below this share of full scale) is stretched to full scale.
    stretch_below: float = 0.9

    @property
    def n_values(self) -> int:
        """Values per image (the model's input width)."""
        return self.side * self.side


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS, draft_side: int = 0) -> Image.Image:
    """The first frame of a PNG or JPEG, loaded; :class:`ImageError` says what is wrong.

    ``draft_side`` > 0 lets a JPEG decode at the smallest DCT scale that keeps both
    sides at least that long (much faster for big photos).
    """
    return load_image(open_image(data, max_pixels), draft_side)


def open_image(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A PNG or JPEG with its header read and checked, its pixels not yet decoded.

    Cheap whatever the image claims: :class:`ImageTooLarge` when it has more than
    ``max_pixels`` pixels, :class:`ImageError` when it is no PNG or JPEG at all.
    """
    if not data:
        raise EmptyImage("the body is empty; send a PNG or JPEG image")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:  # Pillow's own limit: twice MAX_IMAGE_PIXELS
        claimed = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageTooLarge(
            f"the image claims more than {claimed} pixels; at most {max_pixels} are accepted"
        ) from None
    except UnidentifiedImageError:
        raise NotAnImage(
            f"the body is not a PNG or JPEG image (it starts with {data[:8]!r})"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise TruncatedImage(f"the image header is unreadable: {exc}") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise NotAnImage(f"the image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLarge(
            f"the image is {width}x{height} = {width * height} pixels; "
            f"at most {max_pixels} are accepted"
        )
    return image


def load_image(image: Image.Image, draft_side: int = 0) -> Image.Image:
    """Decode the pixels of an image from :func:`open_image` (see :func:`decode_image`)."""
    if draft_side > 0 and image.format == "JPEG":
        image.draft("L", (draft_side, draft_side))
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"the image is too large: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow says "image file is truncated", "broken PNG file", "Truncated File Read"...
        raise TruncatedImage(f"the image data is truncated or corrupt: {exc}") from None
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError):  # a broken EXIF block: keep as is
        return image


def _grey(image: Image.Image) -> Image.Image:
    """Luma, with any transparency flattened on white paper."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return image.convert("L")


def _border_mean(values: np.ndarray) -> float:
    ring = np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])
    return float(ring.mean())


def to_digit_values(image: Image.Image, spec: DigitImageSpec = DigitImageSpec()) -> np.ndarray:
    """A decoded image as the model's ``spec.side**2`` float32 values (ink high), row by row."""
    grey = np.asarray(_grey(image), dtype=np.float32)
    if _border_mean(grey) > _BORDER_LIGHT:
        grey = 255.0 - grey
    grey -= grey.min()
    peak = float(grey.max())
    if 0 < peak < spec.stretch_below * 255.0:
        grey *= 255.0 / peak
    height, width = grey.shape
    square = max(height, width)
    if height != width:
        padded = np.zeros((square, square), dtype=np.float32)
        top, left = (square - height) // 2, (square - width) // 2
        padded[top : top + height, left : left + width] = grey
        grey = padded
    if square != spec.side:
        shrunk = Image.fromarray(grey).resize((spec.side, spec.side), Image.Resampling.BOX)
        grey = np.asarray(shrunk, dtype=np.float32)
    values = grey.reshape(-1) * np.float32(spec.max_value / 255.0)
    if spec.round_values:
        values = np.rint(values)
    return np.clip(values, 0, spec.max_value).astype(np.float32)


def image_to_digits(data: bytes, spec: DigitImageSpec = DigitImageSpec()) -> np.ndarray:
    """Image bytes (PNG or JPEG) to a (1, ``spec.side**2``) float32 row for the model."""
    return opened_to_digits(open_image(data, spec.max_pixels), spec)


def opened_to_digits(image: Image.Image, spec: DigitImageSpec = DigitImageSpec()) -> np.ndarray:
    """:func:`image_to_digits` of an image from :func:`open_image` (the costly part: a
    service may run it in a worker thread when the image is large)."""
    loaded = load_image(image, draft_side=spec.side * 4)
    return to_digit_values(loaded, spec)[np.newaxis, :]


def render_digit(
    values: np.ndarray,
    *,
    scale: int = 4,
    size: int | None = None,
    ink: tuple[int, int, int] | None = None,
    paper: tuple[int, int, int] = (255, 255, 255),
    max_value: float = MAX_VALUE,
) -> Image.Image:
    """An image of a data-set row (side**2 values 0..``max_value``): dark ink on light paper.

    Each value becomes a ``scale`` x ``scale`` block (greyscale, exact). With ``ink``,
    the image is in colour, blended from ``paper`` to ``ink``; with ``size``, it is then
    resized (bilinear) to ``size`` x ``size``.
    """
    side = round(len(values) ** 0.5)
    if side * side != len(values):
        raise ValueError(f"{len(values)} values are not a square image")
    ink_share = np.clip(np.asarray(values, dtype=np.float64) / max_value, 0.0, 1.0)
    grid = ink_share.reshape(side, side).repeat(scale, axis=0).repeat(scale, axis=1)
    if ink is None:
        image = Image.fromarray(np.rint(255.0 * (1.0 - grid)).astype(np.uint8))
    else:
        start, end = np.array(paper, dtype=np.float64), np.array(ink, dtype=np.float64)
        rgb = start + grid[..., np.newaxis] * (end - start)
        image = Image.fromarray(np.rint(rgb).astype(np.uint8))
    if size is not None and size != image.width:
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return image
