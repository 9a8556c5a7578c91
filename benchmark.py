"""Benchmark the hot path: seconds per evaluation, FLOPs, share of the machine's matmul speed, peak RSS.

The command's code is neural_style_tf/apps/benchmark.py; this file lets it run from a checkout
(python benchmark.py --help). Installed, the same command is neural-style-benchmark.
"""

import sys

from neural_style_tf.apps.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
