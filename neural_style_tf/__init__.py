"""Neural style transfer (Gatys et al.) in TensorFlow graph mode with SciPy L-BFGS.

The Python API (api.py, docs/python-api.md):

    import neural_style_tf as nst
    result = nst.style_transfer("photo.jpg", ["painting.jpg"], width=512, iterations=150)
    nst.save(result.image, "out.png")

`style_transfer`, `save`, `release`, `Result`, `Step` and `UsageError` are found here lazily: the
package itself imports nothing but the standard library.

The package holds what the commands (neural_style.py, video.py, batch.py, compare.py,
reproduce.py, benchmark.py) and the classic facades (stylize.py, vgg.py) share, and the
commands' code (apps/). Importing it, or any module in it, imports no TensorFlow: the
functions that build graphs import it where they build them (tf_runtime.import_tensorflow).
The default feature network is the embedded ImageNet VGG-19 (networks/codebook.py).

Module by module: docs/README.md, "The package, module by module" (the one map;
tests/test_structure.py checks it against the tree).
"""

__version__ = "0.2.0"

import importlib

# name -> the module that defines it, imported on first use (PEP 562).
_LAZY = {"style_transfer": "api", "save": "api", "release": "api", "Result": "api", "Step": "api",
         "UsageError": "errors"}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
