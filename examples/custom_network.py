"""Build a small Inception-style classifier with named blocks and save it as .keras.

    python examples/custom_network.py --output my_inception.keras
    python vgg.py layers --network my_inception.keras
    python neural_style.py --network my_inception.keras --content-layers inception_4 \\
        --style-layers stem_conv,inception_1,inception_2,inception_3 ...

The model is untrained (random weights, seeded): it shows the route, not a good
network. Train it on your own dataset (`model.fit`) before saving for results that
reflect what it learned; see the README, "Your own network".
"""

from __future__ import annotations

import argparse
import os
import sys

CHANNELS = 32
CLASSES = 10
SEED = 0


def inception_block(x, filters, name):
    """GoogLeNet's idea: 1x1, 3x3 and 5x5 convolutions and a pooled path side by side,
    concatenated; the 1x1 convolutions before the large ones keep it cheap."""
    import keras
    from keras import layers

    def conv(t, n, size, suffix):
        return layers.Conv2D(n, size, padding="same", activation="relu", name=f"{name}_{suffix}")(t)

    b1 = conv(x, filters, 1, "1x1")
    b3 = conv(conv(x, filters // 2, 1, "3x3_reduce"), filters, 3, "3x3")
    b5 = conv(conv(x, filters // 4, 1, "5x5_reduce"), filters // 2, 5, "5x5")
    bp = conv(layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x), filters // 2, 1, "pool_proj")
    return keras.layers.Concatenate(name=name)([b1, b3, b5, bp])


def build_model(channels=CHANNELS, classes=CLASSES, seed=SEED):
    """Stem, four Inception blocks (two per resolution, pooling between), classifier head.

    The input takes any height and width (None), as style transfer needs; the global
    average pooling makes the head independent of the size too.
    """
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    image = keras.Input((None, None, 3), name="image")
    x = layers.Conv2D(channels, 3, padding="same", activation="relu", name="stem_conv")(image)
    x = layers.MaxPooling2D(2, name="stem_pool")(x)
    x = inception_block(x, channels, "inception_1")
    x = inception_block(x, channels, "inception_2")
    x = layers.MaxPooling2D(2, name="pool_2")(x)
    x = inception_block(x, 2 * channels, "inception_3")
    x = inception_block(x, 2 * channels, "inception_4")
    x = layers.GlobalAveragePooling2D(name="global_pool")(x)
    logits = layers.Dense(classes, name="logits")(x)
    return keras.Model(image, logits, name="tiny_inception")


def build_parser():
    p = argparse.ArgumentParser(description="Save a small untrained Inception-style Keras model for --network.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--output", required=True, help="the .keras file to write")
    p.add_argument("--channels", type=int, default=CHANNELS, help="filters of the first blocks")
    p.add_argument("--seed", type=int, default=SEED, help="seed of the random weights")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    return p


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.output.endswith(".keras"):
        parser.error(f"--output must end in .keras, not {args.output}")
    if os.path.exists(args.output) and not args.overwrite:
        parser.error(f"{args.output} exists; pass --overwrite to replace it")
    if args.channels < 4:
        parser.error(f"--channels must be at least 4, not {args.channels}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import vgg

    vgg.import_tensorflow()
    model = build_model(args.channels, seed=args.seed)
    # Keras writes .keras files as a zip in one go; write beside and rename so that an
    # interrupted save never leaves a broken file under the final name.
    partial = args.output + ".partial.keras"
    model.save(partial)
    os.replace(partial, args.output)
    print(f"wrote {args.output}: {model.name}, {model.count_params()} parameters; "
          f"list its layers with: python vgg.py layers --network {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
