"""stylize.py is a facade: every name it re-exports is the very object of its home module
(neural_style_tf/losses.py, objective.py, optimize.py, settings.py, tf_runtime.py), and it
defines nothing of its own. The algorithm's tests are test_losses.py, test_objective.py
and test_optimize.py."""

from __future__ import annotations

import ast
import importlib

import stylize


def facade_imports():
    """{name in stylize: (home module, name there)} of every `from M import name [as other]` in stylize.py."""
    with open(stylize.__file__, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    return {alias.asname or alias.name: (node.module, alias.name) for node in tree.body
            if isinstance(node, ast.ImportFrom) and node.module != "__future__" for alias in node.names}


def test_every_name_in_the_facade_is_the_object_of_its_home_module():
    homes = facade_imports()
    assert len(homes) > 50
    for name, (home, original) in homes.items():
        assert getattr(stylize, name) is getattr(importlib.import_module(home), original), (name, home)
    # the names this project's scripts and the classic tool's users call, from their homes
    for name, home in (("Objective", "objective"), ("minimize", "optimize"), ("Evaluator", "optimize"),
                       ("gram_matrix", "losses"), ("LOSS_SCALES", "losses"), ("initial_image", "objective"),
                       ("LossOptions", "settings")):
        assert homes[name][0] == f"neural_style_tf.{home}", name


def test_the_facade_defines_nothing_of_its_own():
    public = {n for n in vars(stylize) if not n.startswith("_") and n != "annotations"}
    assert public == set(facade_imports())
