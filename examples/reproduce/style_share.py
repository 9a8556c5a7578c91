"""The style term's share of the starting loss in reproduce.py's Figure 3 panels, with each
convention of the terms (docs/reproducing-the-paper.md, "Which normalisation of the terms").

    python examples/reproduce/style_share.py 128 384 > shares.jsonl

One evaluation per panel, convention and size, at reproduce.py's noise start (seed 0), on
the normalised embedded VGG-19 (made once and cached, as reproduce.py does).
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import stylize  # noqa: E402
import vgg  # noqa: E402
from neural_style_tf import images, presets, targets  # noqa: E402
from neural_style_tf.apps import reproduce  # noqa: E402
from neural_style_tf.networks import normalization  # noqa: E402


def main(sizes):
    net = normalization.normalized_network(vgg.load_net(), presets.PRESETS["gatys2016"]["pooling"])
    for size in sizes:
        photo = images.load_image(os.path.join(reproduce.EXAMPLES, reproduce.CONTENT))
        content = images.resize_to_width(photo, size)
        for panel in reproduce.panels("figure3"):
            painting = images.load_image(os.path.join(reproduce.EXAMPLES, reproduce.PAINTINGS[panel["painting"]][0]))
            style = targets.size_styles_to_content([painting], content.shape, "content")[0]
            for convention in reproduce.CONVENTIONS:
                p = {**panel, "convention": convention}
                with stylize.Objective(net, content, [style], reproduce.loss_options(p)) as obj:
                    terms, _ = obj.evaluate(reproduce.start_image(p, content, net, obj))
                print(json.dumps({"size": size, "panel": panel["id"], "ratio": panel["ratio"], "convention": convention,
                                  "content": terms["content"], "style": terms["style"],
                                  "style_share": terms["style"] / terms["total"]}), flush=True)


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [128])
