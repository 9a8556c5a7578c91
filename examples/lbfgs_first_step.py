"""L-BFGS's start against Adam's: best-so-far loss per evaluation on one objective.

    python examples/lbfgs_first_step.py --width 256 --init content --evaluations 40 --first-steps 0 1 3 10 30

Runs L-BFGS once per --first-steps value (0: SciPy's own start, as the classic tools)
and Adam at learning rates 3, 10 and 30 from the same start on the same Objective, and
prints, for each L-BFGS run, the worst ratio of its best loss to the best Adam loss at
every evaluation count from 15 on (issue 13's target: at most 1). Writes the curves to
--out (JSON). The embedded network; Neckarfront x Starry Night unless --content/--style.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # an example run from the checkout

import stylize  # noqa: E402
import vgg  # noqa: E402
from neural_style_tf import images  # noqa: E402
from neural_style_tf.settings import LossOptions, OptimizerOptions  # noqa: E402

ADAM_RATES = (3.0, 10.0, 30.0)
FROM = 15


def curve(objective, x0, opts):
    rows = []
    t0 = time.perf_counter()
    stylize.minimize(objective, x0, opts, on_evaluation=lambda i, t, terms: rows.append(terms["total"]))
    return np.minimum.accumulate(rows).tolist(), time.perf_counter() - t0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--content", default=os.path.join(ROOT, "examples", "tubingen_neckarfront.jpg"))
    p.add_argument("--style", default=os.path.join(ROOT, "examples", "starry_night.jpg"))
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--init", choices=("content", "noise"), default="content")
    p.add_argument("--evaluations", type=int, default=40)
    p.add_argument("--first-steps", type=float, nargs="+", default=[0.0, 10.0])
    p.add_argument("--out", default=None, help="JSON file for the curves")
    args = p.parse_args(argv)
    network = vgg.load_net()
    content = images.resize_to_width(images.load_image(args.content), args.width)
    objective = stylize.Objective(network, content, [images.load_image(args.style)],
                                  LossOptions(tv_weight=network.default_tv_weight))
    x0 = stylize.initial_image(content, network, None, 0.0 if args.init == "content" else 1.0, 0)
    objective.evaluate(x0)  # TensorFlow's one-off start-up costs, charged to no run
    n = args.evaluations
    runs = {f"lbfgs first step {s:g}": curve(objective, x0, OptimizerOptions(
        iterations=10**6, max_evaluations=n, lbfgs_first_step=s, min_improvement=0.0)) for s in args.first_steps}
    runs.update({f"adam lr {lr:g}": curve(objective, x0, OptimizerOptions(optimizer="adam", iterations=n,
                                                                          learning_rate=lr)) for lr in ADAM_RATES})
    adam = np.min([v[0][:n] for k, v in runs.items() if k.startswith("adam")], axis=0)
    for label, (losses, seconds) in runs.items():
        if label.startswith("lbfgs"):
            ratio = np.array(losses[:n])[FROM - 1:] / adam[FROM - 1:]
            print(f"{args.width} px from {args.init}, {label}: worst ratio to the best Adam from evaluation {FROM}: "
                  f"{ratio.max():.3f} (evaluation {FROM + int(ratio.argmax())}); at {FROM}: {losses[FROM - 1]:.4g} "
                  f"vs {adam[FROM - 1]:.4g}; at {n}: {losses[n - 1]:.4g} vs {adam[n - 1]:.4g}; {seconds:.0f} s")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump({"width": args.width, "init": args.init, "curves": {k: v[0] for k, v in runs.items()},
                       "seconds": {k: v[1] for k, v in runs.items()}}, f, indent=1)
    objective.close()


if __name__ == "__main__":
    main()
