"""The price of replicate padding at every convolution (docs/quality.md, "The strip along the right edge").

Seconds per evaluation of the default objective at 512 px on the embedded VGG-19, every
convolution zero-padded against every one replicate-padded (the tool's default), timed in
alternating rounds in one process so that the shared machine's load falls on both alike.

    python examples/results/quality/padding_time.py [--precision bfloat16] [--rounds 4]
"""

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

import stylize  # noqa: E402
import vgg  # noqa: E402
from neural_style_tf import images  # noqa: E402
from neural_style_tf.settings import LossOptions  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--network", default=None)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="bfloat16")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--evaluations", type=int, default=3, help="per round and padding")
    args = p.parse_args()
    net = vgg.load_net(args.network).with_precision(args.precision)
    photo = images.resize_to_width(images.load_image(os.path.join(ROOT, "examples", "tubingen_neckarfront.jpg")),
                                   args.width)
    style = images.resize_to_width(images.load_image(os.path.join(ROOT, "examples", "starry_night.jpg")), args.width)
    objectives = {}
    for padding in ("zero", "replicate"):
        objective = stylize.Objective(net, photo, [style], loss=dataclasses.replace(LossOptions(), padding=padding))
        objective.__enter__()
        objective.evaluate(photo)  # the first evaluation builds and warms up; not timed
        objectives[padding] = objective
    times = {padding: [] for padding in objectives}
    for _ in range(args.rounds):
        for padding, objective in objectives.items():
            start = time.perf_counter()
            for _ in range(args.evaluations):
                objective.evaluate(photo)
            times[padding].append((time.perf_counter() - start) / args.evaluations)
    for padding, seconds in times.items():
        print(f"every conv {padding:9s}: median {np.median(seconds):.3f} s/evaluation "
              f"(rounds: {' '.join(f'{s:.3f}' for s in seconds)})")
    for objective in objectives.values():
        objective.__exit__(None, None, None)


if __name__ == "__main__":
    main()
