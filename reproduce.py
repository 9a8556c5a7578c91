"""Reproduce the figures of Gatys, Ecker & Bethge (CVPR 2016) with the gatys2016 preset.

The command's code is neural_style_tf/apps/reproduce.py; this file lets it run from a checkout
(python reproduce.py --help). Installed, the same command is neural-style-reproduce.
"""

import sys

from neural_style_tf.apps.reproduce import main

if __name__ == "__main__":
    sys.exit(main())
