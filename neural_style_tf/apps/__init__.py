"""The commands' code: what video.py, batch.py, compare.py, reproduce.py, benchmark.py and
examples/quality_panel.py run. The core (the rest of neural_style_tf, stylize.py, vgg.py,
neural_style.py) never imports this package; a piece two commands share lives here or,
when the core needs it too, in the core.

Module by module: docs/README.md, "The package, module by module".
"""
