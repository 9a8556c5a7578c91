"""L-BFGS against Adam on the same style-transfer objective: a fair, resumable experiment.

The command's code is neural_style_tf/apps/compare.py; this file lets it run from a checkout
(python compare.py --help). Installed, the same command is neural-style-compare.
"""

import sys

from neural_style_tf.apps.compare import main

if __name__ == "__main__":
    sys.exit(main())
