"""Make a short real clip from a photo: a slow pan and zoom, rendered as numbered frames.

    python examples/video_clip.py frames OUT_DIR [--photo examples/tubingen_neckarfront.jpg]
    python examples/video_clip.py flow-accuracy [--photo ...]
    python examples/video_clip.py strip CLIP_DIR INDEPENDENT_DIR CONSISTENT_DIR OUT.jpg [--first N]

`frames` writes frame_00001.png ... (the input of docs/video.md's study). Because the
camera path is known exactly, so is the optical flow between any two frames;
`flow-accuracy` compares OpenCV's DIS and Farneback flows against it (end-point error
over the pixels visible in both frames, and seconds per flow), which is how
neural_style_tf/flow.py's default was chosen. `strip` puts four consecutive frames of two
stylised versions side by side, each above its flicker: |frame - previous frame warped|.

The default photo: Tübingen Neckarfront – photo by Andreas Praefcke, CC BY 3.0, via
Wikimedia Commons; every frame, and every stylised frame, is an adaptation and carries
that credit.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
from PIL import Image

# Run as `python examples/video_clip.py` from a checkout: the package is beside examples/.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from neural_style_tf import flow, images  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PHOTO = os.path.join(HERE, "tubingen_neckarfront.jpg")
FRAMES = 24
SIZE = (192, 256)  # height, width of each frame
# The camera: a crop box (left, top, width) of the photo, moved and shrunk linearly from
# the first frame to the last; the box keeps the frames' aspect ratio. In photo pixels
# of the 1024x768 Neckarfront: about 6 px right and 3 px narrower per frame, i.e. about
# 1.5-2.5 px of motion per frame at 256 px, a slow pan with a slow zoom in.
START = (60.0, 120.0, 720.0)
END = (200.0, 170.0, 640.0)


def camera(index, count=FRAMES):
    """(left, top, box width) of frame `index` (0-based) in photo pixels."""
    t = index / max(1, count - 1)
    return tuple(a + t * (b - a) for a, b in zip(START, END))


def render(photo, index, count=FRAMES, size=SIZE):
    """Frame `index`: the camera's box of the photo, resampled (Lanczos) to `size`."""
    left, top, width = camera(index, count)
    height = width * size[0] / size[1]
    box = (left, top, left + width, top + height)
    return np.asarray(photo.resize((size[1], size[0]), Image.Resampling.LANCZOS, box=box), np.float32)


def exact_flow(a, b, count=FRAMES, size=SIZE):
    """The true flow from frame a to frame b: where each pixel centre of a lies in b."""
    (la, ta, wa), (lb, tb, wb) = camera(a, count), camera(b, count)
    sa, sb = wa / size[1], wb / size[1]  # photo pixels per frame pixel
    ys, xs = np.mgrid[0:size[0], 0:size[1]].astype(np.float64)
    px, py = la + (xs + 0.5) * sa, ta + (ys + 0.5) * sa  # photo coordinates
    xb, yb = (px - lb) / sb - 0.5, (py - tb) / sb - 0.5
    return np.dstack([xb - xs, yb - ys]).astype(np.float32)


def write_frames(out_dir, photo_path, count):
    os.makedirs(out_dir, exist_ok=True)
    photo = Image.open(photo_path).convert("RGB")
    for i in range(count):
        images.save_image(os.path.join(out_dir, f"frame_{i + 1:05d}.png"), render(photo, i, count))
    print(f"wrote {count} frames of {SIZE[1]}x{SIZE[0]} to {out_dir}")


def flow_accuracy(photo_path, count, step=1):
    """End-point error of each method against the exact flow, frames i -> i + step."""
    photo = Image.open(photo_path).convert("RGB")
    frames = [render(photo, i, count) for i in range(count)]
    print(f"{'method':10} {'EPE px':>8} {'EPE, reliable px':>17} {'reliable %':>11} {'s per flow':>11}")
    for method in flow.METHODS:
        errors, reliable_errors, shares, seconds = [], [], [], 0.0
        for i in range(count - step):
            truth = exact_flow(i + step, i, count)  # backward: frame i+1 -> frame i
            t0 = time.perf_counter()
            backward = flow.estimate_flow(frames[i + step], frames[i], method)
            forward = flow.estimate_flow(frames[i], frames[i + step], method)
            seconds += (time.perf_counter() - t0) / 2
            visible = flow.inside(truth)
            error = np.sqrt(np.sum(np.square(backward - truth), axis=-1))
            mask = flow.reliability(forward, backward) > 0
            errors.append(error[visible].mean())
            reliable_errors.append(error[mask & visible].mean())
            shares.append(mask.mean())
        print(f"{method:10} {np.mean(errors):8.3f} {np.mean(reliable_errors):17.3f} {100 * np.mean(shares):10.1f}%"
              f" {seconds / (count - step):11.4f}")


GAIN = 4  # the flicker maps: 4 x |difference|, so 64 grey levels show white


def load_frames(folder, first, count):
    names = sorted(n for n in os.listdir(folder) if n.startswith("frame_") and n.endswith(".png"))
    return [images.load_image(os.path.join(folder, n)) for n in names[first - 2:first - 1 + count]]


def flicker_map(clip, result, i):
    """|result i - result i-1 warped| (mean over channels) where the flow is reliable, grey elsewhere."""
    forward = flow.estimate_flow(clip[i - 1], clip[i])
    backward = flow.estimate_flow(clip[i], clip[i - 1])
    mask = flow.reliability(forward, backward)
    diff = np.abs(result[i] - flow.warp(result[i - 1], backward)).mean(axis=-1)
    shown = np.where(mask > 0, np.clip(GAIN * diff, 0, 255), 96.0)
    return np.repeat(shown[..., None], 3, axis=2)


def strip(clip_dir, rows, out, first, count=4):
    """Rows of `count` frames from `first` (1-based), each version above its flicker maps."""
    from PIL import ImageDraw

    clip = None
    tiles = []
    for label, folder in rows:
        result = load_frames(folder, first, count)
        if clip is None:  # the input at the results' size (video.py --width), for the flow
            clip = [images.resize_to_width(f, result[0].shape[1]) for f in load_frames(clip_dir, first, count)]
        tiles.append((f"{label}: frames {first}-{first + count - 1}", result[1:]))
        tiles.append((f"{label}: {GAIN} x |frame - previous warped|", [flicker_map(clip, result, i)
                                                                          for i in range(1, count + 1)]))
    height, width = clip[0].shape[:2]
    label_h = 16
    sheet = Image.new("RGB", (count * width, len(tiles) * (height + label_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, frames) in enumerate(tiles):
        top = r * (height + label_h)
        draw.text((4, top + 2), label, fill="black")
        for c, frame in enumerate(frames):
            sheet.paste(Image.fromarray(images.to_uint(frame)), (c * width, top + label_h))
    images.save_image(out, np.asarray(sheet, np.float32), quality=85)
    print(f"wrote {out} ({sheet.size[0]}x{sheet.size[1]})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=("frames", "flow-accuracy", "strip"))
    p.add_argument("paths", nargs="*", help="frames: OUT_DIR; strip: CLIP_DIR INDEPENDENT_DIR CONSISTENT_DIR OUT.jpg")
    p.add_argument("--photo", default=PHOTO)
    p.add_argument("--frames", type=int, default=FRAMES)
    p.add_argument("--first", type=int, default=10, help="strip: the first frame shown (1-based, at least 2)")
    args = p.parse_args(argv)
    if args.what == "strip":
        if len(args.paths) != 4:
            p.error("strip needs CLIP_DIR INDEPENDENT_DIR CONSISTENT_DIR OUT.jpg")
        clip_dir, independent, consistent, out = args.paths
        strip(clip_dir, [("independent", independent), ("consistent", consistent)], out, max(2, args.first))
    elif args.what == "frames":
        if len(args.paths) != 1:
            p.error("frames needs OUT_DIR")
        write_frames(args.paths[0], args.photo, args.frames)
    else:
        flow_accuracy(args.photo, args.frames)
    return 0


if __name__ == "__main__":
    sys.exit(main())
