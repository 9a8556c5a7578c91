"""The automatic sky mask of a photo (what --style-masks auto-sky uses), as an image file.

    python examples/sky_mask.py examples/tubingen_neckarfront.jpg out.png
    python examples/sky_mask.py examples/tubingen_neckarfront.jpg pair.jpg --pair --width 512

White is sky, black is not; the edge is soft. With --pair the photo and its mask are
written side by side (how examples/results/spatial/auto_sky_neckarfront.jpg was made).
The method and its limits: neural_style_tf/sky.py and docs/spatial-control.md.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from neural_style_tf import images  # noqa: E402
from neural_style_tf.cli import fail  # noqa: E402
from neural_style_tf.errors import ImageError  # noqa: E402
from neural_style_tf.sky import sky_mask  # noqa: E402


def build_parser():
    parser = argparse.ArgumentParser(prog="sky_mask.py", description=__doc__.splitlines()[0])
    parser.add_argument("photo", help="the photo (any format the tool reads)")
    parser.add_argument("out", help="the mask to write (.png, .jpg, .tif, .webp); replaced if it exists")
    parser.add_argument("--pair", action="store_true", help="write photo | mask side by side")
    parser.add_argument("--width", type=int, default=None, help="resize the photo to this width first")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    problem = images.check_output_path(args.out, overwrite=True, what="mask")
    if problem is None and args.width is not None and args.width < 1:
        problem = f"--width must be at least 1, got {args.width}"
    if problem is not None:
        return fail("sky_mask.py", problem)
    try:
        photo = images.load_image(args.photo)
    except ImageError as exc:
        return fail("sky_mask.py", str(exc))
    if args.width is not None:
        photo = images.resize_to_width(photo, args.width)
    sky = sky_mask(photo)
    mask = np.repeat(sky[..., None] * 255.0, 3, axis=2)
    images.save_image(args.out, np.concatenate([photo, mask], axis=1) if args.pair else mask)
    print(f"{args.out}: sky {sky.mean():.1%} of the picture")
    return 0


if __name__ == "__main__":
    sys.exit(main())
