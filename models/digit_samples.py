"""The digits samples the patterns ship: held-out images of the data set, as image files.

    python -m models.digit_samples [--out patterns/prep-pred/samples]

writes, for each digit ``d``, the first few of its held-out images (never seen
in training): ``digit-<d>-<i>.png``, 32x32 greyscale, dark ink on white, each
of the 64 values a 4x4 block; and ``digit-<d>-<i>.jpg``, 64x64 colour JPEG,
blue ink on yellowish paper (8x8 blocks). The same data always gives the same
images, and :func:`shared.mechanisms.digit_images.image_to_digits` turns each PNG back into
exactly its 64 values (the JPEGs come back close to them).
"""

import argparse
import sys
from pathlib import Path

import numpy as np

from models.digits import digits_split
from models.trained import Split

SAMPLES_DIR = Path("patterns/prep-pred/samples")
#: Held-out images rendered per digit: this many PNGs, then this many JPEGs.
SAMPLES_PNG = 3
SAMPLES_JPEG = 1


def sample_rows(split: Split, per_digit: int) -> list[tuple[int, int, np.ndarray]]:
    """``(digit, i, values)`` of the first ``per_digit`` held-out images of each digit."""
    chosen = []
    for digit in range(10):
        rows = np.flatnonzero(split.y_test == digit)[:per_digit]
        chosen.extend((digit, i, split.x_test[row]) for i, row in enumerate(rows))
    return chosen


def render_samples(out: Path) -> list[Path]:
    """Write the sample images into ``out``; returns the files, sorted."""
    from shared.mechanisms.digit_images import render_digit  # noqa: PLC0415 - Pillow: not in the export image

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for digit, i, values in sample_rows(digits_split(), SAMPLES_PNG + SAMPLES_JPEG):
        if i < SAMPLES_PNG:
            path = out / f"digit-{digit}-{i}.png"
            render_digit(values, scale=4).save(path, format="PNG")
        else:
            path = out / f"digit-{digit}-{i}.jpg"
            image = render_digit(values, scale=8, ink=(30, 40, 160), paper=(250, 240, 200))
            image.save(path, format="JPEG", quality=90)
        written.append(path)
    return sorted(written)


def main(argv: list[str] | None = None) -> int:
    """Command line: render the sample images into --out."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR)
    args = parser.parse_args(argv)
    files = render_samples(args.out)
    print(f"wrote {len(files)} images to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
