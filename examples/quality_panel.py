"""The quality panel (docs/quality.md): run with named settings, measure, and write contact sheets.

    python examples/quality_panel.py --out-dir runs/quality --size 512 \
        --setting before="--preset classic --iterations 300" --setting after=""

The work is done by neural_style_tf/apps/quality.py; see its docstring for the measures.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from neural_style_tf.apps.quality import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
