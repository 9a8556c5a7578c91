"""Many neural_style.py jobs on Ray: folder in, folder out, sweeps, jobs.jsonl.

The command's code is neural_style_tf/apps/batch.py; this file lets it run from a checkout
(python batch.py --help). Installed, the same command is neural-style-batch.
"""

import sys

from neural_style_tf.apps.batch import main

if __name__ == "__main__":
    sys.exit(main())
